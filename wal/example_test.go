package wal_test

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/shoaldb/shoal/wal"
)

func Example() {
	dir, err := os.MkdirTemp("", "wal-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	l, err := wal.Open(dir, nil) // defaults: SyncAlways, 64 MiB segments
	if err != nil {
		log.Fatal(err)
	}
	// One Append, one fdatasync, offsets 0..2; all or none survive a crash.
	first, err := l.Append([]byte("a"), []byte("b"), []byte("c"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first:", first, "next:", l.NextOffset())

	r, err := l.NewReader(1)
	if err != nil {
		log.Fatal(err)
	}
	for {
		off, rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d: %s\n", off, rec)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// first: 0 next: 3
	// 1: b
	// 2: c
}
