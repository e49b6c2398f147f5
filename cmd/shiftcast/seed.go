package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/shiftcast/shiftcast/seed"
	"github.com/shiftcast/shiftcast/store"
)

func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		c    common
		opts seed.Options
		mig  bool
	)
	fs := newFlagSet("seed", `Load a generated dataset with COPY.
  challenge    the challenge's dataset: 10 facilities, 10 documents, 100 workers,
               2,000,000 shifts in February 2023, then three deterministic
               workers (printed at the end)
  marketplace  a larger workforce with shifts over the coming weeks`, stdout)
	c.register(fs, getenv)
	fs.StringVar(&opts.Profile, "profile", "challenge", "challenge or marketplace")
	fs.Int64Var(&opts.Seed, "seed", 1, "random seed; the same seed loads the same data")
	fs.BoolVar(&opts.Reset, "reset", false, "empty the marketplace tables first (and the notification history of the workers they held)")
	fs.BoolVar(&opts.Bare, "bare", false, "create only the challenge's own tables (no shiftcast indexes, triggers or River), to measure the challenge's usual SQL as written")
	fs.BoolVar(&mig, "migrate", true, "apply migrations first (ignored with --bare)")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	opts.Now = time.Now().UTC()
	st, err := store.Open(ctx, c.databaseURL, store.Config{MaxConns: 4})
	if err != nil {
		return err
	}
	defer st.Close()
	if mig && !opts.Bare {
		if err := st.Migrate(ctx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	if err := seed.Run(ctx, st, opts, stdout); err != nil {
		return fmt.Errorf("seed %s: %w", opts.Profile, err)
	}
	return nil
}
