package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"

	"github.com/shoaldb/shoal/node"
	"github.com/shoaldb/shoal/node/client"
	"github.com/shoaldb/shoal/node/httpapi"
)

func Example() {
	// A node serving its HTTP API (what `shoal agent` runs).
	dir, _ := os.MkdirTemp("", "shoal-example-")
	defer os.RemoveAll(dir)
	db, err := node.Open(dir, &node.Options{Sync: node.SyncNever})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(httpapi.NewHandler(db, nil))
	defer srv.Close()

	// Its client, with the methods of the embedded node.
	c, err := client.New(srv.URL, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	sub, err := c.Subscribe(ctx, "todo/")
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	var store node.Store = c // or db: the same code runs in process
	_ = store.Put("todo/1", map[string]any{"title": "buy milk", "done": false})
	_ = store.SetAdd("tags", "home", "errand")
	n, _ := store.Incr("visits", 2)
	v, _ := store.Get("todo/1")
	fmt.Println(v.Type, v.Data, n)
	tags, _ := store.Get("tags")
	fmt.Printf("%T %v\n", tags.Data, tags.Data)
	_, err = store.Get("nope")
	fmt.Println(errors.Is(err, node.ErrNotFound), err)

	ev, _ := sub.Next(ctx)
	fmt.Println(ev.Key, ev.Data)
	// Output:
	// register map[done:false title:buy milk] 2
	// []string [errand home]
	// true node: not found: "nope"
	// todo/1 map[done:false title:buy milk]
}
