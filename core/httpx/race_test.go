//go:build race

package httpx

// raceEnabled: the race detector adds allocations, so allocation counts
// are checked only without it.
const raceEnabled = true
