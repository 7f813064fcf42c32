// Package loadbench holds the benchmarks that drive the real tributary binary
// over loopback HTTP: start-up time, idle memory, and request throughput.
// Run them with `make bench`; they report custom metrics next to ns/op.
package loadbench
