package main

import (
	"context"
	"fmt"
	"io"

	"github.com/shiftcast/shiftcast/store"
)

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var c common
	fs := newFlagSet("migrate", "Apply database migrations: the marketplace tables when absent, shiftcast's indexes and tables, River's tables.", stdout)
	c.register(fs, getenv)
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	st, err := store.Open(ctx, c.databaseURL, store.Config{MaxConns: 2})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}
