package inbound

import (
	"context"
	"errors"
	"testing"
	"time"
)

// One origin holds one slot: its second transaction waits while another
// origin's goes ahead, and goes once the first is done.
func TestSlotsPerOrigin(t *testing.T) {
	tx := newTransactions()
	release, err := tx.slot(t.Context(), "slow.example")
	if err != nil {
		t.Fatal(err)
	}
	other, err := tx.slot(t.Context(), "fast.example")
	if err != nil {
		t.Fatalf("another origin waits for the slow one: %v", err)
	}
	other()

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := tx.slot(ctx, "slow.example"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second transaction of the same origin: %v, want it to wait", err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := tx.slot(t.Context(), "slow.example")
		if err == nil {
			r()
		}
		got <- err
	}()
	release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if n := len(tx.origins); n != 0 {
		t.Fatalf("%d origins remembered with no transaction", n)
	}
}

// The global bound: past maxConcurrentTxns origins, the next waits.
func TestSlotsGlobal(t *testing.T) {
	tx := newTransactions()
	var releases []func()
	for i := range maxConcurrentTxns {
		r, err := tx.slot(t.Context(), "s"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := tx.slot(ctx, "late.example"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slot past the global bound: %v", err)
	}
	for _, r := range releases {
		r()
	}
	r, err := tx.slot(t.Context(), "late.example")
	if err != nil {
		t.Fatal(err)
	}
	r()
}

// A transaction is processed once: a repeat finds the first's entry, and
// after the first was forgotten (its request ended unfinished) it is new.
func TestTransactionDedupe(t *testing.T) {
	tx := newTransactions()
	k := txnKey{"c.example", "1"}
	e, first := tx.begin(k)
	if !first {
		t.Fatal("first sight not first")
	}
	if e2, first := tx.begin(k); first || e2 != e {
		t.Fatal("repeat processed again")
	}
	if _, first := tx.begin(txnKey{"d.example", "1"}); !first {
		t.Fatal("the same txnId of another origin is a repeat")
	}
	tx.forget(k, e)
	if _, first := tx.begin(k); !first {
		t.Fatal("forgotten transaction not processed again")
	}
}
