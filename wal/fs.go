package wal

import (
	"errors"
	"io"
	"os"
	"path/filepath"
)

// FS is the small slice of a file system the log uses. OSFS is the real one;
// tests wrap it to fail the next write or sync, cut a write short, or report
// a full disk. Implementations must be safe for concurrent use.
type FS interface {
	// OpenFile opens name like os.OpenFile.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Remove removes a file.
	Remove(name string) error
	// Rename renames a file atomically (within one directory).
	Rename(oldname, newname string) error
	// ReadDir lists the file names in dir.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates dir and its parents.
	MkdirAll(dir string, perm os.FileMode) error
	// SyncDir makes the directory's entries (creates, renames, removes) durable.
	SyncDir(dir string) error
}

// File is an open file. ReadAt may be called concurrently with everything
// else; the log serialises the other methods per file.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes the written data (and the size) durable: fdatasync.
	Sync() error
	// Truncate changes the size of the file.
	Truncate(size int64) error
	// Allocate reserves disk blocks for [off, off+n) and extends the size to
	// cover it, so that later writes through a memory map cannot fail for lack
	// of space. A full disk must be reported here as an error.
	Allocate(off, n int64) error
	// Size is the current size of the file.
	Size() (int64, error)
	// Fd is the descriptor, for memory-mapping the index.
	Fd() uintptr
	Close() error
}

// OSFS is the operating system's file system.
type OSFS struct{}

type osFile struct{ *os.File }

// OpenFile implements FS.
func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (f osFile) Sync() error { return fdatasync(f.File) }

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (f osFile) Allocate(off, n int64) error {
	err := fallocate(f.File, off, n)
	if err == nil || !errors.Is(err, errAllocUnsupported) {
		return err
	}
	// No fallocate on this file system: write zeros, which reserves the
	// blocks just the same (and fails with ENOSPC just the same).
	zeros := make([]byte, 64<<10)
	for n > 0 {
		c := int64(len(zeros))
		if c > n {
			c = n
		}
		if _, err := f.WriteAt(zeros[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

// mkdirDurable creates dir and any missing parents, and fsyncs the parent
// of each directory it created, so that the new entries survive a crash.
func mkdirDurable(fs FS, dir string) error {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !isNotExist(err) {
			break
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range created {
		if err := fs.SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

var errAllocUnsupported = errors.New("wal: fallocate unsupported")
