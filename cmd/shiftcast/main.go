// Command shiftcast is the eligibility-aware notification worker of the
// staffing marketplace: run `shiftcast --help` for its subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shiftcast:", err)
		os.Exit(exitCode(err))
	}
}
