package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startBoard starts a board of n replicas on free ports and waits until
// every replica has a data stream up to every other.
func startBoard(t *testing.T, n int) *Board {
	t.Helper()
	b, err := Start(context.Background(), Options{Nodes: n, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	eventually(t, 20*time.Second, func() bool {
		for _, r := range b.Replicas {
			up := 0
			for _, m := range r.Node.Members() {
				if !m.Self && m.Connected {
					up++
				}
			}
			if up != n-1 {
				return false
			}
		}
		return true
	}, "replicas did not connect")
	return b
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: "+format, append([]any{timeout}, args...)...)
		}
		<-tick.C
	}
}

func TestBoardEndpoint(t *testing.T) {
	b := startBoard(t, 2)
	base := strings.TrimSuffix(b.Replicas[0].URL, "/")
	post := func(body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(base+"/board", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("POST /board %s: answer not JSON: %v", body, err)
		}
		return resp.StatusCode, m
	}
	for _, bad := range []string{``, `{}`, `{"offline": "yes"}`, `{"offline": true, "x": 1}`, `[true]`, `{"offline": tru`} {
		if code, m := post(bad); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(m["error"]), "offline") {
			t.Errorf("POST /board %q: %d %v, want 400 with a message", bad, code, m)
		}
	}
	if code, m := post(`{"offline": true}`); code != 200 || m["offline"] != true || m["name"] != "board1" {
		t.Fatalf("going offline: %d %v", code, m)
	}
	// The cut is real: a write on one side does not reach the other, and
	// its sync status says so.
	if err := b.Replicas[1].Node.Put("card/x", "y"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() bool {
		st, err := b.Replicas[1].Node.SyncStatus()
		return err == nil && len(st.Peers) == 1 && !st.Peers[0].Synced
	}, "board2 does not see board1 behind")
	if _, err := b.Replicas[0].Node.Get("card/x"); err == nil {
		t.Fatal("a write crossed the offline switch")
	}
	if code, m := post(`{"offline": false}`); code != 200 || m["offline"] != false {
		t.Fatalf("going online: %d %v", code, m)
	}
	eventually(t, 20*time.Second, func() bool {
		_, err := b.Replicas[0].Node.Get("card/x")
		return err == nil
	}, "board1 did not get the write made while it was offline")
	req, _ := http.NewRequest(http.MethodDelete, base+"/board", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE /board: %d", resp.StatusCode)
	}
	// The page and its scripts are served, with no other origin involved.
	for _, p := range []string{"", "board.js", "board.css"} {
		resp, err := http.Get(b.Replicas[1].URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(body.String(), "://") && p == "" {
			t.Fatalf("GET /%s: %d, or the page loads something from elsewhere", p, resp.StatusCode)
		}
	}
}

func TestRunFlags(t *testing.T) {
	var out bytes.Buffer
	for _, args := range [][]string{{"--nodes", "0"}, {"--nodes", "17"}, {"--port", "-1"}, {"--port", "65535", "--nodes", "2"}, {"--bogus"}} {
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("board %q: want an error", args)
		}
	}
}

// findChromium returns the browser the test drives: $SHOAL_CHROMIUM, else
// the first of the usual names on $PATH.
func findChromium() string {
	if p := os.Getenv("SHOAL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// page is one browser tab on one replica's page.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
}

// stepTimeout bounds every browser step: a step waits for a condition
// (chromedp's queries and Poll), never for a moment.
const stepTimeout = 30 * time.Second

func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %s: %v\n%s", p.name, what, err, p.diagnose())
	}
}

// diagnose describes the page's state for a failure message.
func (p *page) diagnose() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`"status: " + document.getElementById("status").textContent +
		"\nerror: " + document.getElementById("error-text").textContent + "\nboard:\n" + document.getElementById("board").innerText`))
	if err != nil {
		return "(page state unavailable: " + err.Error() + ")"
	}
	return s
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitJS waits until the JavaScript expression is truthy on the page.
func (p *page) waitJS(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout)))
	if err == nil {
		return
	}
	// Say which part of the condition does not hold.
	var parts strings.Builder
	for _, part := range strings.Split(expr, " && ") {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(`+part+`)`))
		cancel()
		fmt.Fprintf(&parts, "  %s\n    = %q %v\n", part, v, err)
	}
	p.t.Fatalf("%s: wait for %s: %v\n%s%s", p.name, what, err, parts.String(), p.diagnose())
}

func (p *page) eval(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("%s: eval %s: %v", p.name, expr, err)
	}
	return s
}

// boardText is what the board shows, as the user reads it.
func (p *page) boardText() string { return p.eval(`document.getElementById("board").innerText`) }

// cardJS is a JavaScript expression for the card showing title (see
// helpersJS).
func cardJS(title string) string { return `T.card(` + js(title) + `)` }

// helpersJS is installed in each page for the test's conditions.
const helpersJS = `(window.T = {
	card: (title) => [...document.querySelectorAll(".card")].find((c) => (c.querySelector(".title") || {}).textContent === title) || null,
	byID: (id) => document.querySelector('.card[data-id="' + id + '"]'),
	tags: (card) => card ? [...card.querySelectorAll(".tag")].map((t) => t.dataset.tag).join() : null,
	votes: (card) => card ? card.querySelector("button.vote").textContent : null,
	column: (card) => card ? card.closest(".column").dataset.column : null,
	siblings: (card) => card ? [...card.querySelectorAll(".sibling-value")].map((s) => s.textContent).sort().join("|") : null,
	status: () => document.getElementById("status").textContent,
}, "ok")`

// addCard adds a card through the form and returns its id, once shown.
func (p *page) addCard(title string) string {
	p.t.Helper()
	p.do("add "+title, chromedp.SendKeys(chromedp.CSS("#new-title"), title), chromedp.Click(chromedp.CSS("#add-button")))
	p.waitJS("card "+title, cardJS(title))
	return p.eval(cardJS(title) + `.dataset.id`)
}

func cardSel(id, sel string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf(`.card[data-id=%q] %s`, id, sel))
}

func (p *page) click(id, sel string) {
	p.t.Helper()
	p.do("click "+sel, chromedp.Click(cardSel(id, sel), chromedp.NodeVisible))
}

func (p *page) setTitle(id, title string) {
	p.t.Helper()
	p.click(id, "button.edit")
	p.do("edit title", chromedp.SetValue(cardSel(id, ".edit-title"), title, chromedp.NodeVisible), chromedp.Click(cardSel(id, "button.save")))
	p.waitJS("title "+title, cardJS(title))
}

func (p *page) tag(id, tag string) {
	p.t.Helper()
	p.do("tag "+tag, chromedp.SendKeys(cardSel(id, ".tag-input"), tag, chromedp.NodeVisible), chromedp.Click(cardSel(id, "button.add-tag")))
}

// screenshot saves the page as a PNG in dir and returns the image.
func (p *page) screenshot(dir, name string) []byte {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-"+p.name+".png"), b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return b
}

// TestBoardInBrowser drives two pages on two replicas in a real browser:
// concurrent adds, edits, votes, tags and deletes; one replica offline
// while both sides edit; then reconnected, both pages must show the same
// board, text for text, with the conflicting title's sibling and the card
// deleted on one side and edited on the other.
func TestBoardInBrowser(t *testing.T) {
	chrome := findChromium()
	if chrome == "" {
		t.Skip("no chromium found (chromium, chromium-browser, google-chrome on $PATH, or $SHOAL_CHROMIUM): apt-get install chromium to run the browser test")
	}
	shots := t.ArtifactDir()
	b := startBoard(t, 2)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chrome),
			chromedp.NoSandbox, // CI runs as root
			chromedp.DisableGPU,
			chromedp.WindowSize(900, 640),
		)...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer func() {
		// Close the browser gracefully and wait for it, so that none of
		// chromedp's goroutines outlives the test.
		ctx, cancel := context.WithTimeout(browserCtx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(ctx)
		cancelBrowser()
	}()
	// The first Do starts the browser (its first tab stays blank); each
	// page gets a tab of its own.
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("starting %s: %v", chrome, err)
	}
	var pages []*page
	for _, r := range b.Replicas {
		ctx, cancel := chromedp.NewContext(browserCtx)
		defer cancel()
		// The first Do on a context opens its tab for the context's
		// lifetime: it must not run under a step's timeout.
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("%s: opening a tab: %v", r.Name, err)
		}
		p := &page{t: t, name: r.Name, ctx: ctx}
		p.do("open "+r.URL, chromedp.Navigate(r.URL))
		p.eval(helpersJS)
		p.waitJS("the catch-up", `document.body.dataset.ready === "1"`)
		pages = append(pages, p)
	}
	a, bb := pages[0], pages[1]
	both := func(what, expr string) {
		t.Helper()
		for _, p := range pages {
			p.waitJS(what, expr)
		}
	}
	sameText := func(what string) string {
		t.Helper()
		var ta, tb string
		eventually(t, stepTimeout, func() bool {
			ta, tb = a.boardText(), bb.boardText()
			return ta == tb
		}, "%s: the pages differ:\n--- %s\n%s\n--- %s\n%s", what, a.name, ta, bb.name, tb)
		return ta
	}

	// Bad input gets a message in the page, and nothing is written.
	a.do("add an empty card", chromedp.Click(chromedp.CSS("#add-button")))
	a.waitJS("the error", `!document.getElementById("error").hidden && /the title is empty/.test(document.getElementById("error-text").textContent)`)
	a.do("dismiss the error", chromedp.Click(chromedp.CSS("#error-close")))

	// Online: both pages add, vote, tag, move and delete at once.
	alpha := a.addCard("Alpha")
	beta := bb.addCard("Beta")
	both("both cards", `T.card("Alpha") && T.card("Beta")`)
	a.click(alpha, "button.vote")
	bb.click(alpha, "button.vote")
	a.click(alpha, "button.vote")
	a.tag(alpha, "urgent")
	bb.tag(alpha, "ui")
	a.click(beta, "button.right")
	gamma := bb.addCard("Gamma")
	bb.click(gamma, "button.delete")
	both("the online edits", `T.votes(T.card("Alpha")) === "▲ 3" && T.tags(T.card("Alpha")) === "ui,urgent"`+
		` && T.column(T.card("Beta")) === "doing" && !T.card("Gamma")`)
	sameText("online")

	// board1 goes offline; both sides edit the same cards.
	a.do("go offline", chromedp.Click(chromedp.CSS("#offline")))
	a.waitJS("offline", `document.body.dataset.offline === "1"`)
	a.setTitle(alpha, "Alpha (edited offline)")
	bb.setTitle(alpha, "Alpha (edited online)")
	a.click(beta, "button.delete")
	bb.setTitle(beta, "Beta (kept)")
	a.click(alpha, "button.vote")
	bb.tag(alpha, "merged")
	delta := a.addCard("Delta")
	a.waitJS("Beta gone", `!T.byID(`+js(beta)+`) && T.card("Delta")`)
	bb.waitJS("board1 behind", `/board1: behind by \d+ op/.test(T.status())`)
	a.waitJS("board2 behind", `/board2: behind by \d+ op/.test(T.status())`)
	if got := a.eval(`T.card("Alpha (edited offline)").dataset.id`); got != alpha {
		t.Fatalf("board1 shows %q for Alpha's title while offline", got)
	}
	for _, p := range pages {
		p.screenshot(shots, "1-offline")
	}

	// Back online: the replicas merge and both pages show the merge.
	a.do("go online", chromedp.Click(chromedp.CSS("#offline")))
	a.waitJS("online", `document.body.dataset.offline === "0"`)
	eventually(t, 30*time.Second, func() bool {
		return b.Replicas[0].Node.Digest() == b.Replicas[1].Node.Digest()
	}, "replicas did not converge")
	alphaCard := `T.byID(` + js(alpha) + `)`
	both("the merge", `T.siblings(`+alphaCard+`) === "Alpha (edited offline)|Alpha (edited online)"`+
		` && T.votes(`+alphaCard+`) === "▲ 4" && T.tags(`+alphaCard+`) === "merged,ui,urgent"`+
		// Deleted on board1, retitled on board2: the edit survives the
		// delete (an observed remove), the fields it did not touch do not.
		` && T.card("Beta (kept)") !== null && T.card("Beta (kept)").querySelector(".survivor") !== null`+
		` && T.card("Delta") !== null && T.card("Delta").dataset.id === `+js(delta))
	both("synced status", `!/behind/.test(T.status()) && /board\d: synced/.test(T.status())`)
	merged := sameText("after the merge")
	if strings.Count(merged, "Concurrent titles") != 1 {
		t.Fatalf("want one conflict shown, board:\n%s", merged)
	}
	var imgs [][]byte
	for _, p := range pages {
		imgs = append(imgs, p.screenshot(shots, "2-merged"))
	}
	if path := os.Getenv("SHOAL_BOARD_SCREENSHOT"); path != "" {
		if err := os.WriteFile(path, sideBySide(t, imgs...), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Keep the title that lost: it becomes the only one, on both pages.
	loser := bb.eval(alphaCard + `.querySelectorAll(".sibling-value")[1].textContent`)
	bb.do("keep the lost title", chromedp.Click(cardSel(alpha, `.sibling:nth-child(2) button.keep`), chromedp.NodeVisible))
	both("the kept title", alphaCard+`.querySelector(".title").textContent === `+js(loser)+` && !`+alphaCard+`.querySelector(".conflict")`)
	final := sameText("after keeping a title")
	for _, want := range []string{loser, "Beta (kept)", "Delta", "▲ 4"} {
		if !strings.Contains(final, want) {
			t.Fatalf("final board lacks %q:\n%s", want, final)
		}
	}
	for _, p := range pages {
		p.screenshot(shots, "3-resolved")
	}
	t.Logf("screenshots in %s", shots)
}

// sideBySide joins PNG screenshots left to right into one PNG.
func sideBySide(t *testing.T, pngs ...[]byte) []byte {
	t.Helper()
	var imgs []image.Image
	w, h := 0, 0
	for _, b := range pngs {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		w += img.Bounds().Dx()
		h = max(h, img.Bounds().Dy())
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	x := 0
	for _, img := range imgs {
		draw.Draw(out, image.Rect(x, 0, x+img.Bounds().Dx(), img.Bounds().Dy()), img, img.Bounds().Min, draw.Src)
		x += img.Bounds().Dx()
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
