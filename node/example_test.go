package node_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/shoaldb/shoal/node"
)

// An offline-first app opens its local replica and works with no network:
// every write is durable on return, and syncs to peers once replication
// is configured.
func Example() {
	dir, _ := os.MkdirTemp("", "todo-app")
	defer os.RemoveAll(dir)

	db, err := node.Open(dir, nil) // creates the data directory on first run
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	db.Put("todo/1", map[string]any{"title": "buy milk", "done": false})
	db.SetAdd("todo/1/tags", "home", "errands")
	db.Incr("stats/created", 1)

	todo, _ := db.Get("todo/1")
	tags, _ := db.Get("todo/1/tags")
	fmt.Println(todo.Data, tags.Data)
	// Output: map[done:false title:buy milk] [errands home]
}

func ExampleNode_Subscribe() {
	dir, _ := os.MkdirTemp("", "shoal-sub")
	defer os.RemoveAll(dir)
	db, _ := node.Open(dir, nil)
	defer db.Close()

	sub, _ := db.Subscribe(context.Background(), "todo/")
	defer sub.Close()
	db.Put("todo/1", "write the docs")
	db.Delete("todo/1")

	for range 2 {
		ev, _ := sub.Next(context.Background())
		fmt.Println(ev.Key, ev.Deleted, ev.Data)
	}
	// Output:
	// todo/1 false write the docs
	// todo/1 true <nil>
}

func ExampleNode_Commit() {
	dir, _ := os.MkdirTemp("", "shoal-batch")
	defer os.RemoveAll(dir)
	db, _ := node.Open(dir, nil)
	defer db.Close()

	// Move a todo from one list to another: both changes or neither.
	var b node.Batch
	b.SetRemove("list/inbox", "todo/7")
	b.SetAdd("list/done", "todo/7")
	b.Update("todo/7", node.Patch{Set: map[string]any{"done": true}, Incr: map[string]int64{"edits": 1}})
	if err := db.Commit(&b); err != nil {
		log.Fatal(err)
	}
	v, _ := db.Get("todo/7")
	fmt.Println(v.Type, v.Data)
	// Output: map map[done:true edits:1]
}
