// Package api is the contract between swcli and a swcli server, spelled once for both
// sides: the routes (each a method and a path), the JSON bodies, the framed chunk stream,
// how an error's kind travels as an HTTP status, and Endpoint, what the commands and copy
// ask of an instance whether it is the local store or a server over HTTP.
package api
