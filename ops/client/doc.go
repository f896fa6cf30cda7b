// Package client is swcli's client of a swcli server: Remote is an api.Endpoint over HTTP
// (runtime commands and copy through the routes of ops/api, chunks in framed batches,
// error answers mapped back to their kinds) plus the admin and transparency calls;
// RemoteStore is the server's chunk store seen as a cas store, for gc and fsck across
// instances. It knows the server only through the contract in ops/api.
package client
