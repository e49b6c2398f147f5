// Package seed generates the datasets behind `shiftcast seed` and loads them
// through the store's bulk loader. Generation is deterministic for a given
// seed: the same options always produce the same rows, ids included.
//
// Two profiles exist. "challenge" reproduces the challenge's own generator
// (sizes, odds, the three deterministic workers); "marketplace" is a
// realistic, larger workforce with shifts over the weeks after Options.Now,
// for the notification pipeline and its benchmarks.
package seed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// Profile names.
const (
	ProfileChallenge   = "challenge"
	ProfileMarketplace = "marketplace"
)

// Profiles lists the profile names, for flag help.
var Profiles = []string{ProfileChallenge, ProfileMarketplace}

// Options selects and parameterises a dataset.
type Options struct {
	// Profile is ProfileChallenge or ProfileMarketplace.
	Profile string
	// Seed makes generation deterministic.
	Seed int64
	// Reset truncates the marketplace tables first (and, after the load,
	// the notification history of the workers they held, whose ids the new
	// data reuses); without it seeding refuses to write into tables that
	// hold rows.
	Reset bool
	// Bare creates only the challenge's tables (no shiftcast indexes,
	// triggers or River) before loading, in a database that shiftcast's
	// migrations have not touched: the baseline for benchmarks.
	Bare bool
	// Now anchors the marketplace profile's shifts (rounded to the hour);
	// zero means the current time. The challenge profile ignores it.
	Now time.Time
}

// Dataset is a generated dataset ready for store.BulkLoad, plus the workers
// worth printing.
type Dataset struct {
	Bulk store.Bulk
	// ShiftCount is how many shifts Bulk.Shifts yields.
	ShiftCount int
	// Deterministic are the challenge's three always-eligible-somewhere
	// workers (CNA, LVN, RN holding every document); empty for marketplace.
	Deterministic []domain.Worker
}

// sizes scales a profile. The zero value means the profile's real sizes;
// tests shrink them.
type sizes struct {
	shifts int     // challenge: number of random shifts
	scale  float64 // marketplace: fraction of every count
}

// Generate builds the dataset opts describe at full size. It does not touch
// the database; Bulk.Reset is taken from opts.
func Generate(opts Options) (Dataset, error) { return generate(opts, sizes{}) }

func generate(opts Options, sz sizes) (Dataset, error) {
	var ds Dataset
	switch opts.Profile {
	case ProfileChallenge:
		ds = challenge(opts.Seed, sz.shifts)
	case ProfileMarketplace:
		now := opts.Now
		if now.IsZero() {
			now = time.Now()
		}
		ds = marketplace(opts.Seed, now, sz.scale)
	default:
		return ds, domain.Errorf(domain.EINVALID, "unknown seed profile %q (want %s or %s)", opts.Profile, ProfileChallenge, ProfileMarketplace)
	}
	ds.Bulk.Reset = opts.Reset
	return ds, nil
}

// Run generates the dataset opts describe, loads it into st and writes a
// short summary to out: counts and elapsed time and, for the challenge
// profile, one line per deterministic worker ("deterministic worker 101 CNA").
func Run(ctx context.Context, st *store.Store, opts Options, out io.Writer) error {
	return run(ctx, st, opts, out, sizes{})
}

func run(ctx context.Context, st *store.Store, opts Options, out io.Writer, sz sizes) error {
	began := time.Now()
	ds, err := generate(opts, sz)
	if err != nil {
		return err
	}
	if opts.Bare {
		if err := st.CreateBareSchema(ctx); err != nil {
			if errors.Is(err, store.ErrNotBare) {
				return &domain.Error{Code: domain.EINVALID, Message: "--bare needs a database that shiftcast's migrations have not touched; use a fresh one", Err: err}
			}
			return err
		}
	}
	stats, err := st.BulkLoad(ctx, ds.Bulk)
	if err != nil {
		if errors.Is(err, store.ErrNotEmpty) {
			return &domain.Error{Code: domain.EINVALID, Message: "refusing to seed into tables that hold rows (pass --reset to truncate them first)", Err: err}
		}
		return err
	}
	if !opts.Bare {
		if err := st.ResetPipelineState(ctx); err != nil {
			return err
		}
	}
	elapsed := time.Since(began)
	fmt.Fprintf(out, "seeded profile %s (seed %d) in %s: %d facilities, %d documents, %d workers, %d facility requirements, %d worker documents, %d shifts\n",
		opts.Profile, opts.Seed, elapsed.Round(time.Millisecond),
		stats.Facilities, stats.Documents, stats.Workers, stats.Requirements, stats.WorkerDocuments, stats.Shifts)
	fmt.Fprintf(out, "load: shifts copied in %s, indexes rebuilt in %s, vacuum analyze in %s\n",
		stats.CopyShifts.Round(time.Millisecond), stats.BuildIndexes.Round(time.Millisecond), stats.Vacuum.Round(time.Millisecond))
	for _, w := range ds.Deterministic {
		fmt.Fprintf(out, "deterministic worker %d %s\n", w.ID, w.Profession)
	}
	return nil
}

// newRand returns the generator for one stream of a dataset. Streams are
// independent so that a lazily generated stream (the shifts) draws the same
// numbers whenever it runs.
func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}

// hexName is the challenge's name shape: 20 random bytes in hex.
func hexName(r *rand.Rand) string {
	const digits = "0123456789abcdef"
	var b [40]byte
	for i := 0; i < len(b); i += 16 {
		v := r.Uint64()
		for j := i; j < i+16 && j < len(b); j++ {
			b[j] = digits[v&15]
			v >>= 4
		}
	}
	return string(b[:])
}
