package wal

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/tysonmote/gommap"
)

// index is a segment's memory-mapped index file (see doc.go). The committer
// is its only writer; readers hold mu.RLock while they read entries, and
// every remap or unmap holds mu.Lock, so a reader never touches an unmapped
// region.
type index struct {
	path string

	mu sync.RWMutex
	f  File        // nil once sealed: the read-only map outlives the descriptor
	mm gommap.MMap // len(mm) is the mapped (allocated) size; may be nil
}

// growStep bounds how much index space one growth reserves.
const (
	indexMinAlloc = 64 << 10
	indexMaxStep  = 8 << 20
)

// openIndex opens (creating if needed) the writable index of the active
// segment and maps at least want entries. An existing file longer than
// maxBytes (more entries than the store can hold records) is cut there
// first: beyond that it can only be garbage, and need not be mapped.
func openIndex(fs FS, path string, want int, maxBytes int64) (*index, error) {
	f, err := fs.OpenFile(path, osCreateRW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("wal: open index: %w", err)
	}
	x := &index{path: path, f: f}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: stat index %s: %w", path, err)
	}
	if size%indexEntrySize != 0 || size > maxBytes {
		// A torn size can only come from garbage; cut to whole entries.
		size = min(size, maxBytes)
		size -= size % indexEntrySize
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("wal: truncate index %s: %w", path, err)
		}
	}
	if size > 0 {
		if err := x.mapRW(size); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := x.reserve(want); err != nil {
		x.close()
		return nil, err
	}
	return x, nil
}

func (x *index) mapRW(size int64) error {
	mm, err := gommap.MapRegion(x.f.Fd(), 0, size, gommap.PROT_READ|gommap.PROT_WRITE, gommap.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("wal: mmap index %s: %w", x.path, err)
	}
	x.mm = mm
	return nil
}

// entries is how many entries the mapping can hold.
func (x *index) capacity() int { return len(x.mm) / indexEntrySize }

// reserve makes room for at least n entries, allocating disk blocks first so
// that stores into the map can never fault for lack of space. Committer only.
func (x *index) reserve(n int) error {
	if n <= x.capacity() {
		return nil
	}
	need := int64(n) * indexEntrySize
	size := int64(len(x.mm))
	for size < need {
		step := size
		if step < indexMinAlloc {
			step = indexMinAlloc
		}
		if step > indexMaxStep {
			step = indexMaxStep
		}
		size += step
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.unmapLocked(); err != nil {
		return err
	}
	old, err := x.f.Size()
	if err != nil {
		return fmt.Errorf("wal: stat index %s: %w", x.path, err)
	}
	if old < size {
		if err := x.f.Allocate(old, size-old); err != nil {
			// Map what there is again so readers keep working.
			if old > 0 {
				if merr := x.mapRW(old - old%indexEntrySize); merr != nil {
					return merr
				}
			}
			return fmt.Errorf("wal: grow index %s to %d bytes: %w", x.path, size, err)
		}
	} else {
		size = old - old%indexEntrySize
	}
	return x.mapRW(size)
}

func (x *index) unmapLocked() error {
	if x.mm == nil {
		return nil
	}
	err := x.mm.UnsafeUnmap()
	x.mm = nil
	if err != nil {
		return fmt.Errorf("wal: munmap index %s: %w", x.path, err)
	}
	return nil
}

// set writes entry i. Committer only, after reserve.
func (x *index) set(i int, pos int64) {
	putEntry(x.mm[i*indexEntrySize:(i+1)*indexEntrySize], i, pos)
}

// get reads entry i; ok is false past the mapping. Caller holds mu.RLock (or
// is the committer).
func (x *index) get(i int) (rel uint32, pos int64, ok bool) {
	if i < 0 || (i+1)*indexEntrySize > len(x.mm) {
		return 0, 0, false
	}
	b := x.mm[i*indexEntrySize : (i+1)*indexEntrySize]
	return binary.LittleEndian.Uint32(b[0:4]), int64(binary.LittleEndian.Uint32(b[4:8])), true
}

// seal cuts the index to exactly n entries, makes it durable and maps it
// read-only; the descriptor is closed (the map does not need it).
func (x *index) seal(n int) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.f == nil {
		return nil
	}
	if err := x.unmapLocked(); err != nil {
		return err
	}
	size := int64(n) * indexEntrySize
	if err := x.f.Truncate(size); err != nil {
		return fmt.Errorf("wal: truncate index %s: %w", x.path, err)
	}
	if err := x.f.Sync(); err != nil {
		return fmt.Errorf("wal: sync index %s: %w", x.path, err)
	}
	if size > 0 {
		mm, err := gommap.MapRegion(x.f.Fd(), 0, size, gommap.PROT_READ, gommap.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("wal: mmap index %s: %w", x.path, err)
		}
		x.mm = mm
	}
	err := x.f.Close()
	x.f = nil
	if err != nil {
		return fmt.Errorf("wal: close index %s: %w", x.path, err)
	}
	return nil
}

// close unmaps and closes without truncating (used for sealed indexes and
// on failure paths).
func (x *index) close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	err := x.unmapLocked()
	if x.f != nil {
		if cerr := x.f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("wal: close index %s: %w", x.path, cerr)
		}
		x.f = nil
	}
	return err
}

// openSealedIndex maps an existing sealed index read-only.
func openSealedIndex(fs FS, path string) (*index, int64, error) {
	f, err := fs.OpenFile(path, osReadOnly, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, 0, err
	}
	x := &index{path: path}
	if size > 0 && size%indexEntrySize == 0 && size <= 1<<32 {
		mm, err := gommap.MapRegion(f.Fd(), 0, size, gommap.PROT_READ, gommap.MAP_SHARED)
		if err != nil {
			return nil, 0, fmt.Errorf("wal: mmap index %s: %w", path, err)
		}
		x.mm = mm
	}
	return x, size, nil
}

// sealed reports whether the index is sealed (mapped read-only, no
// descriptor): a sealed segment's index is never written again.
func (x *index) sealed() bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.f == nil
}

// clear zeroes entry i. Committer (or recovery) only, within capacity.
func (x *index) clear(i int) {
	clear(x.mm[i*indexEntrySize : (i+1)*indexEntrySize])
}

func putEntry(b []byte, i int, pos int64) {
	binary.LittleEndian.PutUint32(b[0:4], uint32(i))
	binary.LittleEndian.PutUint32(b[4:8], uint32(pos))
}
