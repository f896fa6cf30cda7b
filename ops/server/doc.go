// Package server is `swcli server`: the HTTP API of ops/api over an instance (its routes,
// who may read and write what, users and tokens, uploads not yet committed, the admin
// and ledger routes), Starwhale's own API for its client, and the seams its web console
// (ops/console) uses. It is a front end over the use cases in ops, as the CLI is: ops
// knows nothing of it.
package server
