package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/tributary-hs/tributary/storage/sqlite"
	"github.com/tributary-hs/tributary/storage/storagetest"
)

func BenchmarkStateWrites(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "tributary.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storagetest.BenchStateWrites(b, s)
}
