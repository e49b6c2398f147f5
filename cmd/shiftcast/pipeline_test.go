package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMaxDigestBatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		notifyWorkers int
		floor         float64
		want          int
	}{
		{"the default floor admits a full batch within the bound", 500, 50, 500},
		{"a low fixed rate makes batches of ten seconds' worth", 500, 4, 40},
		{"fewer workers, smaller batches", 20, 50, 20},
		{"below one per ten seconds, one at a time", 500, 0.01, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, maxDigestBatch(tc.notifyWorkers, tc.floor))
		})
	}
}
