// Command notes is an offline-first notes app built on shoal's node
// package: every device keeps its own replica in a local directory, works
// with no network at all, and syncs with its peers whenever they can reach
// each other. Concurrent edits on two devices merge without conflicts:
// titles and bodies are last-writer-wins registers (the losing value stays
// visible as a sibling), tags are an add-wins set, "done" is an
// enable-wins flag and the edit count a counter.
//
//	notes -data ./laptop add "Buy milk" "2 liters"
//	notes -data ./laptop list
//	notes -data ./phone  tag <id> errands
//	notes -data ./laptop -gossip 127.0.0.1:7950 serve          # online, prints changes
//	notes -data ./phone  -gossip 127.0.0.1:7951 -join 127.0.0.1:7950 sync
//
// sync goes online, waits until the peers hold this device's notes (and
// this device theirs), prints the notes and exits: the offline-first round
// trip in one command.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shoaldb/shoal/gossip"
	"github.com/shoaldb/shoal/node"
)

const usage = `Usage: notes [-data DIR] [-gossip ADDR] [-join ADDR,...] COMMAND [args]

Commands:
  add TITLE [BODY]     create a note, print its id
  list                 list the notes
  show ID              show a note (and concurrent titles, if any)
  edit ID TITLE [BODY] change a note's title (and body)
  tag ID TAG...        add tags
  untag ID TAG...      remove tags
  done ID              mark a note done
  rm ID                delete a note
  sync                 go online, exchange notes with -join peers, list, exit
  serve                stay online and print changes as they arrive (Ctrl-C stops)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "notes:", err)
		os.Exit(1)
	}
}

// App is a notes replica.
type App struct {
	db  *node.Node
	out io.Writer
}

// Open opens the notes replica in dir. With gossipAddr set it goes online
// (replication on that address) and joins the given peers when they are up.
func Open(ctx context.Context, dir, gossipAddr string, join []string, out io.Writer) (*App, error) {
	opts := &node.Options{}
	if gossipAddr != "" {
		g := gossip.DefaultLocalConfig()
		host, port, err := splitHostPort(gossipAddr)
		if err != nil {
			return nil, err
		}
		g.BindAddr, g.BindPort = host, port
		g.Name = "notes-" + hex.EncodeToString(randomBytes(4))
		opts.Gossip = g
	}
	db, err := node.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	if len(join) > 0 {
		// Peers that are not up yet are fine: the node keeps trying.
		_ = db.Join(ctx, join...)
	}
	return &App{db: db, out: out}, nil
}

// Close closes the replica.
func (a *App) Close() error { return a.db.Close() }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func noteKey(id string) string { return "note/" + id }

// Add creates a note and returns its id.
func (a *App) Add(title, body string) (string, error) {
	id := hex.EncodeToString(randomBytes(4))
	err := a.db.Update(noteKey(id), node.Patch{
		Set:  map[string]any{"title": title, "body": body, "created": time.Now().UTC().Format(time.RFC3339)},
		Incr: map[string]int64{"edits": 1},
	})
	return id, err
}

// Edit changes a note's title and, when body is not nil, its body.
func (a *App) Edit(id, title string, body *string) error {
	if _, err := a.db.Get(noteKey(id)); err != nil {
		return err
	}
	set := map[string]any{"title": title}
	if body != nil {
		set["body"] = *body
	}
	return a.db.Update(noteKey(id), node.Patch{Set: set, Incr: map[string]int64{"edits": 1}})
}

// Tag adds (or with remove, removes) tags.
func (a *App) Tag(id string, remove bool, tags ...string) error {
	if _, err := a.db.Get(noteKey(id)); err != nil {
		return err
	}
	p := node.Patch{Add: map[string][]string{"tags": tags}}
	if remove {
		p = node.Patch{Remove: map[string][]string{"tags": tags}}
	}
	return a.db.Update(noteKey(id), p)
}

// Done marks a note done.
func (a *App) Done(id string) error {
	if _, err := a.db.Get(noteKey(id)); err != nil {
		return err
	}
	return a.db.Update(noteKey(id), node.Patch{Enable: []string{"done"}})
}

// Remove deletes a note (an edit made concurrently elsewhere survives).
func (a *App) Remove(id string) error { return a.db.Delete(noteKey(id)) }

// Note is a note as the app shows it.
type Note struct {
	ID, Title, Body string
	Tags            []string
	Done            bool
	Edits           int64
}

func toNote(key string, data any) Note {
	m, _ := data.(map[string]any)
	n := Note{ID: strings.TrimPrefix(key, "note/")}
	n.Title, _ = m["title"].(string)
	n.Body, _ = m["body"].(string)
	n.Tags, _ = m["tags"].([]string)
	n.Done, _ = m["done"].(bool)
	n.Edits, _ = m["edits"].(int64)
	return n
}

// Notes lists the notes, by title.
func (a *App) Notes() ([]Note, error) {
	keys, err := a.db.Keys("note/", 0)
	if err != nil {
		return nil, err
	}
	var notes []Note
	for _, k := range keys {
		v, err := a.db.Get(k.Key)
		if errors.Is(err, node.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		notes = append(notes, toNote(k.Key, v.Data))
	}
	sort.SliceStable(notes, func(i, j int) bool { return notes[i].Title < notes[j].Title })
	return notes, nil
}

func (a *App) printNote(n Note) {
	mark := " "
	if n.Done {
		mark = "x"
	}
	tags := ""
	if len(n.Tags) > 0 {
		tags = "  #" + strings.Join(n.Tags, " #")
	}
	fmt.Fprintf(a.out, "[%s] %s  %s%s\n", mark, n.ID, n.Title, tags)
}

// List prints every note.
func (a *App) List() error {
	notes, err := a.Notes()
	if err != nil {
		return err
	}
	if len(notes) == 0 {
		fmt.Fprintln(a.out, "(no notes)")
	}
	for _, n := range notes {
		a.printNote(n)
	}
	return nil
}

// Sync waits for a peer to appear, then until the peers hold this
// replica's notes (WaitSynced). Their notes come the other way through the
// pull a node makes when a connection comes up; Sync returns once no change
// arrived for quietPeriod, or with an error after timeout.
func (a *App) Sync(ctx context.Context, timeout time.Duration) error {
	const quietPeriod = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sub, err := a.db.Subscribe(ctx, "note/")
	if err != nil {
		return err
	}
	defer sub.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !a.connected() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no peer appeared: %w", ctx.Err())
		case <-tick.C:
		}
	}
	if err := a.db.WaitSynced(ctx); err != nil {
		return err
	}
	for {
		qctx, qcancel := context.WithTimeout(ctx, quietPeriod)
		_, err := sub.Next(qctx)
		qcancel()
		switch {
		case err == nil:
			continue // a change arrived: wait for quiet again
		case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			return nil
		default:
			return err
		}
	}
}

// connected reports whether a data stream to some peer is up.
func (a *App) connected() bool {
	for _, m := range a.db.Members() {
		if !m.Self && m.Connected {
			return true
		}
	}
	return false
}

// Serve prints every change, local or from a peer, until ctx ends.
func (a *App) Serve(ctx context.Context) error {
	sub, err := a.db.Subscribe(ctx, "note/")
	if err != nil {
		return err
	}
	defer sub.Close()
	fmt.Fprintln(a.out, "online; waiting for changes (Ctrl-C stops)")
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ev.Deleted {
			fmt.Fprintf(a.out, "deleted %s (by %s)\n", strings.TrimPrefix(ev.Key, "note/"), ev.Origin)
			continue
		}
		fmt.Fprintf(a.out, "changed by %s: ", ev.Origin)
		a.printNote(toNote(ev.Key, ev.Data))
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("notes", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	dir := fs.String("data", "./notes-data", "the replica's data directory")
	gossipAddr := fs.String("gossip", "", "go online: replicate on this address (host:port)")
	join := fs.String("join", "", "peers to join (comma list of gossip addresses)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long sync waits for peers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) == 0 {
		fs.Usage()
		return errors.New("no command")
	}
	cmd, args := args[0], args[1:]
	need := func(n int) error {
		if len(args) < n {
			return fmt.Errorf("%s: want at least %d argument(s)", cmd, n)
		}
		return nil
	}
	if (cmd == "sync" || cmd == "serve") && *gossipAddr == "" {
		*gossipAddr = "127.0.0.1:0"
	}
	var peers []string
	if *join != "" {
		peers = strings.Split(*join, ",")
	}
	a, err := Open(ctx, *dir, *gossipAddr, peers, out)
	if err != nil {
		return err
	}
	defer a.Close()
	switch cmd {
	case "add":
		if err := need(1); err != nil {
			return err
		}
		body := ""
		if len(args) > 1 {
			body = args[1]
		}
		id, err := a.Add(args[0], body)
		if err == nil {
			fmt.Fprintln(out, id)
		}
		return err
	case "list":
		return a.List()
	case "show":
		if err := need(1); err != nil {
			return err
		}
		v, err := a.db.Get(noteKey(args[0]))
		if err != nil {
			return err
		}
		n := toNote(noteKey(args[0]), v.Data)
		a.printNote(n)
		if n.Body != "" {
			fmt.Fprintln(out, n.Body)
		}
		fmt.Fprintf(out, "(%d edit(s))\n", n.Edits)
		return nil
	case "edit":
		if err := need(2); err != nil {
			return err
		}
		var body *string
		if len(args) > 2 {
			body = &args[2]
		}
		return a.Edit(args[0], args[1], body)
	case "tag", "untag":
		if err := need(2); err != nil {
			return err
		}
		return a.Tag(args[0], cmd == "untag", args[1:]...)
	case "done":
		if err := need(1); err != nil {
			return err
		}
		return a.Done(args[0])
	case "rm":
		if err := need(1); err != nil {
			return err
		}
		return a.Remove(args[0])
	case "sync":
		if err := a.Sync(ctx, *timeout); err != nil {
			return err
		}
		return a.List()
	case "serve":
		return a.Serve(ctx)
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", cmd)
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("-gossip %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("-gossip %q: bad port", addr)
	}
	return host, port, nil
}
