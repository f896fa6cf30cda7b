// Package formats is Starwhale's world as files: runtime.yaml (parse, check, template),
// the bundle a build makes of a workdir (_manifest.yaml, the travelling lock, where files
// and wheels go), finding a Python and running pip or conda, and restoring an environment
// from an extracted bundle. It knows nothing of instances, servers or the network: ops
// composes it with the store and the ledger for the commands, the server and .swrt.
package formats
