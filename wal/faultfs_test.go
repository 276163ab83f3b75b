package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

var errCrashed = errors.New("faultfs: crashed")

// faultFS wraps the real file system to inject failures and to simulate a
// machine crash. A crash loses what was not made durable: file bytes written
// after the file's last Sync (optionally keeping a torn part of them) and
// directory entries created or renamed after the directory's last SyncDir.
type faultFS struct {
	mu    sync.Mutex
	inner OSFS

	failWrite    error // the next WriteAt fails with this
	failZeros    error // every WriteAt of zeros only fails with this (after writing half)
	zeroFails    int   // WriteAts failZeros failed
	shortWrite   bool  // the next WriteAt writes half and reports no error
	failSync     error // the next Sync fails with this
	failAllocate error // the next Allocate fails with this
	writeENOSPC  bool  // every WriteAt from now fails with ENOSPC

	ops        int // mutating operations so far
	crashAt    int // the crashAt-th mutating op and all after it fail; 0 = never
	crashed    bool
	opNames    []string
	files      map[string]*fileState // by path
	dirty      []dirOp               // directory changes not yet SyncDir'ed
	keepTorn   func(path string, unsynced int64) int64
	zeroTorn   bool // kept torn bytes are zeroes instead of what was written
	syncCalls  int
	writes     int                          // WriteAt calls, but for those of zeros only (preallocation)
	beforeSync func()                       // called (without the lock) before each store Sync
	beforeRead func(path string, off int64) // called (without the lock) before each ReadAt
	syncedDirs []string                     // every SyncDir, in order
}

type fileState struct {
	synced int64 // size at the last Sync (or when first seen)
	// Writes below synced since the last Sync (into preallocated zeros):
	// dirtyFrom is the lowest such offset (-1: none), undo the bytes they
	// replaced, oldest first, so that a crash can lose them too.
	dirtyFrom int64
	undo      []undoRec
}

type undoRec struct {
	off int64
	old []byte
}

type dirOp struct {
	kind     string // "create" or "rename"
	from, to string
}

func newFaultFS() *faultFS { return &faultFS{files: map[string]*fileState{}} }

// op accounts one mutating operation; it returns errCrashed at and after
// the crash point.
func (f *faultFS) op(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.opLocked(name)
}

func (f *faultFS) opLocked(name string) error {
	if f.crashed {
		return errCrashed
	}
	f.ops++
	f.opNames = append(f.opNames, name)
	if f.crashAt > 0 && f.ops >= f.crashAt {
		f.crashed = true
		return errCrashed
	}
	return nil
}

func (f *faultFS) state(path string) *fileState {
	st := f.files[path]
	if st == nil {
		st = &fileState{dirtyFrom: -1}
		if fi, err := os.Stat(path); err == nil {
			st.synced = fi.Size()
		}
		f.files[path] = st
	}
	return st
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f.mu.Lock()
	_, statErr := os.Stat(name)
	creating := flag&os.O_CREATE != 0 && statErr != nil
	if creating {
		if err := f.opLocked("create " + filepath.Base(name)); err != nil {
			f.mu.Unlock()
			return nil, err
		}
	} else if f.crashed && flag&(os.O_RDWR|os.O_WRONLY) != 0 {
		f.mu.Unlock()
		return nil, errCrashed
	}
	f.mu.Unlock()
	inner, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if creating {
		f.files[name] = &fileState{dirtyFrom: -1}
		f.dirty = append(f.dirty, dirOp{kind: "create", to: name})
	} else {
		st := f.state(name)
		if flag&os.O_TRUNC != 0 {
			st.synced = 0
		}
	}
	f.mu.Unlock()
	return &faultFile{File: inner, fs: f, path: name}, nil
}

func (f *faultFS) Remove(name string) error {
	if err := f.op("remove " + filepath.Base(name)); err != nil {
		return err
	}
	// A removal is modelled as durable at once (undoing it is impossible).
	return f.inner.Remove(name)
}

func (f *faultFS) Rename(oldname, newname string) error {
	if err := f.op("rename " + filepath.Base(oldname)); err != nil {
		return err
	}
	if err := f.inner.Rename(oldname, newname); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.files[oldname]; ok {
		f.files[newname] = st
		delete(f.files, oldname)
	}
	f.dirty = append(f.dirty, dirOp{kind: "rename", from: oldname, to: newname})
	return nil
}

func (f *faultFS) ReadDir(dir string) ([]string, error) { return f.inner.ReadDir(dir) }

func (f *faultFS) MkdirAll(dir string, perm os.FileMode) error { return f.inner.MkdirAll(dir, perm) }

func (f *faultFS) SyncDir(dir string) error {
	if err := f.op("syncdir"); err != nil {
		return err
	}
	f.mu.Lock()
	f.dirty = nil
	f.syncedDirs = append(f.syncedDirs, filepath.Clean(dir))
	f.mu.Unlock()
	return nil
}

// crash applies the loss model to the real files. Call it after the Log
// was abandoned (Closed with errors, or never closed cleanly).
func (f *faultFS) crash() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.crashed = true
	// Undo directory changes that were never synced, newest first.
	for i := len(f.dirty) - 1; i >= 0; i-- {
		d := f.dirty[i]
		switch d.kind {
		case "create":
			os.Remove(d.to)
			delete(f.files, d.to)
		case "rename":
			if err := os.Rename(d.to, d.from); err != nil && !os.IsNotExist(err) {
				return err
			}
			if st, ok := f.files[d.to]; ok {
				f.files[d.from] = st
				delete(f.files, d.to)
			}
		}
	}
	f.dirty = nil
	for path, st := range f.files {
		if filepath.Ext(path) == ".index" {
			continue // a cache; the recovery table covers its states
		}
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		size := fi.Size()
		// What was written since the last Sync: [from, size), overwrites
		// of synced bytes included.
		from := st.synced
		if st.dirtyFrom >= 0 && st.dirtyFrom < from {
			from = st.dirtyFrom
		}
		if size <= from {
			continue
		}
		keep := int64(0)
		if f.keepTorn != nil {
			keep = f.keepTorn(path, size-from)
		}
		cut := from + keep
		if err := revert(path, st, from, cut, f.zeroTorn); err != nil {
			return err
		}
		if size > max(st.synced, cut) {
			if err := os.Truncate(path, max(st.synced, cut)); err != nil {
				return err
			}
		}
	}
	return nil
}

// revert applies a crash to the synced part of a file: the kept torn bytes
// [from, cut) become zeros if zeroTorn, and overwritten bytes from cut on
// get back what they held at the last Sync.
func revert(path string, st *fileState, from, cut int64, zeroTorn bool) error {
	if !(zeroTorn && cut > from) && len(st.undo) == 0 {
		return nil
	}
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	if zeroTorn && cut > from {
		if _, err := fh.WriteAt(make([]byte, cut-from), from); err != nil {
			return err
		}
	}
	for i := len(st.undo) - 1; i >= 0; i-- {
		u := st.undo[i]
		lo, hi := max(u.off, cut), min(u.off+int64(len(u.old)), st.synced)
		if lo < hi {
			if _, err := fh.WriteAt(u.old[lo-u.off:hi-u.off], lo); err != nil {
				return err
			}
		}
	}
	return nil
}

type faultFile struct {
	*os.File
	fs   *faultFS
	path string
}

func (w *faultFile) ReadAt(p []byte, off int64) (int, error) {
	w.fs.mu.Lock()
	hook := w.fs.beforeRead
	w.fs.mu.Unlock()
	if hook != nil {
		hook(w.path, off)
	}
	return w.File.ReadAt(p, off)
}

func (w *faultFile) WriteAt(p []byte, off int64) (int, error) {
	f := w.fs
	f.mu.Lock()
	if err := f.opLocked("write " + filepath.Base(w.path)); err != nil {
		f.mu.Unlock()
		return 0, err
	}
	if f.failWrite != nil {
		err := f.failWrite
		f.failWrite = nil
		f.mu.Unlock()
		return 0, err
	}
	if f.writeENOSPC {
		f.mu.Unlock()
		return 0, &os.PathError{Op: "write", Path: w.path, Err: syscall.ENOSPC}
	}
	if f.failZeros != nil && allZero(p) {
		err := f.failZeros
		f.zeroFails++
		f.mu.Unlock()
		n, _ := w.File.WriteAt(p[:len(p)/2], off)
		return n, err
	}
	short := f.shortWrite
	f.shortWrite = false
	if !allZero(p) {
		f.writes++
	}
	if st := f.state(w.path); off < st.synced && len(p) > 0 {
		old := make([]byte, min(int64(len(p)), st.synced-off))
		if _, err := w.File.ReadAt(old, off); err != nil {
			f.mu.Unlock()
			return 0, err
		}
		st.undo = append(st.undo, undoRec{off: off, old: old})
		if st.dirtyFrom < 0 || off < st.dirtyFrom {
			st.dirtyFrom = off
		}
	}
	f.mu.Unlock()
	if short && len(p) > 1 {
		return w.File.WriteAt(p[:len(p)/2], off)
	}
	return w.File.WriteAt(p, off)
}

func (w *faultFile) Sync() error {
	f := w.fs
	f.mu.Lock()
	if err := f.opLocked("sync " + filepath.Base(w.path)); err != nil {
		f.mu.Unlock()
		return err
	}
	f.syncCalls++
	before := f.beforeSync
	if f.failSync != nil {
		err := f.failSync
		f.failSync = nil
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	if before != nil {
		before()
	}
	// No real fdatasync: durability is what this double models (crash
	// keeps only synced bytes), and it keeps the crash tables fast.

	f.mu.Lock()
	if fi, err := w.File.Stat(); err == nil {
		st := f.state(w.path)
		st.synced, st.dirtyFrom, st.undo = fi.Size(), -1, nil
	}
	f.mu.Unlock()
	return nil
}

func (w *faultFile) Truncate(size int64) error {
	if err := w.fs.op("truncate " + filepath.Base(w.path)); err != nil {
		return err
	}
	if err := w.File.Truncate(size); err != nil {
		return err
	}
	w.fs.mu.Lock()
	if st := w.fs.state(w.path); st.synced > size {
		st.synced = size
	}
	w.fs.mu.Unlock()
	return nil
}

func (w *faultFile) Allocate(off, n int64) error {
	f := w.fs
	f.mu.Lock()
	if err := f.opLocked("allocate " + filepath.Base(w.path)); err != nil {
		f.mu.Unlock()
		return err
	}
	if f.failAllocate != nil {
		err := f.failAllocate
		f.failAllocate = nil
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	return osFile{w.File}.Allocate(off, n)
}

func (w *faultFile) Size() (int64, error) { return osFile{w.File}.Size() }

func (w *faultFile) String() string { return fmt.Sprintf("faultFile(%s)", w.path) }
