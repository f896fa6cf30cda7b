// Command swcli manages Python runtimes on a content-addressed, event-sourced store.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/swcli/swcli/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
