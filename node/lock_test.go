package node

import (
	"sync"
	"testing"
	"unsafe"
)

func TestStateLockShardsFillCacheLines(t *testing.T) {
	var l stateLock
	if s := unsafe.Sizeof(l.shards[0]); s != 64 {
		t.Fatalf("a shard is %d bytes, want 64", s)
	}
}

// Readers on any shard exclude the writer.
func TestStateLockExcludes(t *testing.T) {
	var l stateLock
	var mu sync.Mutex
	readers, writers := 0, 0
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				if (g+i)%10 == 0 {
					l.Lock()
					mu.Lock()
					if readers != 0 || writers != 0 {
						t.Error("writer with others inside")
					}
					writers++
					mu.Unlock()
					mu.Lock()
					writers--
					mu.Unlock()
					l.Unlock()
					continue
				}
				sh := l.rlock()
				mu.Lock()
				if writers != 0 {
					t.Error("reader with a writer inside")
				}
				readers++
				mu.Unlock()
				mu.Lock()
				readers--
				mu.Unlock()
				l.runlock(sh)
			}
		})
	}
	wg.Wait()
}
