package media

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Store keeps file contents by their SHA-256, so identical uploads share
// one copy. An S3-compatible backend implements the same interface.
type Store interface {
	// Put stores up to limit bytes from r and returns their hash and size;
	// ErrTooLarge past the limit (nothing is kept then).
	Put(r io.Reader, limit int64) (sha string, size int64, err error)
	// Open opens stored content.
	Open(sha string) (io.ReadSeekCloser, error)
	// Delete removes stored content (gone already is no error).
	Delete(sha string) error
}

// ErrTooLarge: the content is over the size limit.
var ErrTooLarge = errors.New("media: content too large")

// DirStore is the default Store: files under a directory, fanned out by the
// first bytes of their hash.
type DirStore struct{ root string }

// NewDirStore makes (if needed) and uses root.
func NewDirStore(root string) (*DirStore, error) {
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("media store: %w", err)
	}
	return &DirStore{root: root}, nil
}

func (d *DirStore) path(sha string) string {
	return filepath.Join(d.root, sha[:2], sha[2:4], sha)
}

// Put writes to a temporary file while hashing, then moves it into place
// (synced, so a stored upload survives a crash).
func (d *DirStore) Put(r io.Reader, limit int64) (string, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "upload-")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = ErrTooLarge
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	sha := hex.EncodeToString(h.Sum(nil))
	dst := d.path(sha)
	if _, err := os.Stat(dst); err == nil {
		return sha, n, nil // deduplicated
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", 0, err
	}
	return sha, n, nil
}

// Open implements Store.
func (d *DirStore) Open(sha string) (io.ReadSeekCloser, error) {
	if len(sha) != 64 {
		return nil, fmt.Errorf("media store: bad hash %q", sha)
	}
	return os.Open(d.path(sha))
}

// Delete implements Store.
func (d *DirStore) Delete(sha string) error {
	if len(sha) != 64 {
		return fmt.Errorf("media store: bad hash %q", sha)
	}
	if err := os.Remove(d.path(sha)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
