package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFanoutSet(t *testing.T) {
	t.Parallel()
	var s fanoutSet
	a := FanoutArgs{FacilityID: 1, Profession: "RN", Window: 10}
	require.False(t, s.seen(a), "nothing committed yet")
	s.add(a)
	require.True(t, s.seen(a))
	require.False(t, s.seen(FanoutArgs{FacilityID: 2, Profession: "RN", Window: 10}))
	require.False(t, s.seen(FanoutArgs{FacilityID: 1, Profession: "RN", Window: 11}), "another window is another job")

	s.add(FanoutArgs{FacilityID: 1, Profession: "RN", Window: 11})
	require.False(t, s.seen(a), "older windows are forgotten, so the set stays one window small")
	s.add(a)
	require.False(t, s.seen(a), "a late commit for an older window is not recorded")
}
