package tests

// The web console in a real browser: headless Chromium, driven with
// chromedp, against running uad instances.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browserTimeout bounds one browser test.
const browserTimeout = 60 * time.Second

// pageErrors collects what the page reported as errors: uncaught
// exceptions, console.error and the browser's error log entries.
type pageErrors struct {
	mu   sync.Mutex
	errs []string
	// ignoreNetwork leaves out the browser's log of failed requests (the
	// 401s a page without the token is meant to get).
	ignoreNetwork bool
}

func (p *pageErrors) listen(ev any) {
	var msg string
	switch e := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if e.Type != runtime.ConsoleAPICalledTypeError && e.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range e.Args {
			parts = append(parts, string(a.Value)+a.Description)
		}
		msg = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
	case *log.EventEntryAdded:
		if e.Entry.Level != log.EntryLevelError || p.ignoreNetwork && e.Entry.Source == log.EntrySourceNetwork {
			return
		}
		msg = "log (" + string(e.Entry.Source) + "): " + e.Entry.Text + " " + e.Entry.URL
	default:
		return
	}
	p.mu.Lock()
	p.errs = append(p.errs, msg)
	p.mu.Unlock()
}

func (p *pageErrors) check(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		t.Errorf("JavaScript error in the console: %s", e)
	}
}

// newBrowser starts a headless Chromium whose page errors go to errs.
func newBrowser(t *testing.T, errs *pageErrors) context.Context {
	t.Helper()
	requirePeer(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("chromium"),
		chromedp.NoSandbox, // root in a container has no user namespace sandbox
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithListener(errs.listen))
	ctx, cancelTimeout := context.WithTimeout(ctx, browserTimeout)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("chromium did not start: %v", err)
	}
	return ctx
}

// artifactDir is where screenshots go: $TEST_ARTIFACTS, or a directory
// under the system's temporary one that outlives the test.
func artifactDir(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_ARTIFACTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "uad-test-artifacts")
	}
	dir := filepath.Join(base, t.Name()+"-"+time.Now().UTC().Format("20060102T150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// screenshot saves a PNG of the whole page.
func screenshot(t testing.TB, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitJS waits until a JavaScript expression is truthy in the page.
func waitJS(t testing.TB, ctx context.Context, what, expr string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(sigTimeout))); err != nil {
		t.Fatalf("console: %s: not seen within %v (%s): %v", what, sigTimeout, expr, err)
	}
}

func do(t testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("console: %s: %v", what, err)
	}
}

func TestConsoleHoldFromTheBrowser(t *testing.T) {
	t.Parallel()
	errs := &pageErrors{}
	ctx := newBrowser(t, errs)
	dir := artifactDir(t)
	b := startUAD(t, UADOptions{Name: "B"})
	a := startUAD(t, UADOptions{Name: "A"})
	evA, evB := a.Events(), b.Events()

	// Place the call from the form.
	do(t, ctx, "open the calls page",
		chromedp.Navigate(a.URL()+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#new-call")),
		chromedp.SendKeys(chromedp.CSS("#to"), b.SIPURI("uad")),
		chromedp.Click(chromedp.CSS("#place")))
	connected := evA.WaitType(t, "call.connected", "", sigTimeout)
	id := connected.CallID()
	idB := evB.WaitType(t, "call.connected", "", sigTimeout).CallID()
	row := fmt.Sprintf(`document.querySelector('#calls tr[data-call="%s"]')`, id)
	waitJS(t, ctx, "the row of the call, live", row+`?.dataset.state === "live"`)

	// Hold from the row.
	do(t, ctx, "click hold", chromedp.Click(chromedp.CSS(`#calls tr[data-call="`+id+`"] button.hold`)))
	evA.WaitType(t, "hold.success", id, sigTimeout)
	evB.WaitType(t, "held", idB, sigTimeout)
	waitJS(t, ctx, "the row showing the hold", row+`?.dataset.localHold === "true" && `+row+`.querySelector("td.hold").textContent === "held by uad" && `+row+`.dataset.state === "hold"`)
	screenshot(t, ctx, dir, "calls-held")

	// The call page: the hold re-INVITE, its 200 and ACK on the ladder,
	// hold.success on the timeline, media charts.
	do(t, ctx, "open the call page", chromedp.Click(chromedp.CSS(`#calls tr[data-call="`+id+`"] th a`)),
		chromedp.WaitVisible(chromedp.CSS("#ladder svg")))
	const ladder = `[...document.querySelectorAll("#ladder g.msg")].map(g => g.dataset.summary)`
	waitJS(t, ctx, "the hold re-INVITE, its 200 and its ACK on the ladder", `(() => {
		const s = `+ladder+`;
		const i = s.findIndex(x => x.startsWith("INVITE (hold: audio sendonly"));
		const j = s.findIndex((x, k) => k > i && x.startsWith("200 OK (hold: audio recvonly"));
		return i >= 0 && j > i && s.slice(j + 1).includes("ACK");
	})()`)
	waitJS(t, ctx, "hold.success on the timeline", `document.querySelector('#timeline li[data-type="hold.success"]') !== null`)
	waitJS(t, ctx, "the media charts", `document.querySelectorAll("#stats figure .chart svg polyline").length >= 4`)
	// The hold INVITE, opened whole, has its SDP marked.
	do(t, ctx, "open the hold INVITE", chromedp.Click(chromedp.CSS("#ladder g.msg.hold")),
		chromedp.WaitVisible(chromedp.CSS("#raw mark.hold")))
	raw, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#raw")))
	if err != nil || !strings.Contains(raw, "a=sendonly") || !strings.HasPrefix(raw, "INVITE ") {
		t.Errorf("raw view of the hold INVITE = %q (%v)", raw, err)
	}
	href, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#pcap"), "href"))
	if err != nil || !strings.HasSuffix(href.Value, "/v1/calls/"+id+"/pcap") {
		t.Errorf("pcap link = %+v (%v)", href, err)
	}
	screenshot(t, ctx, dir, "call-held")

	// Back on the calls page: unhold, then hang up.
	do(t, ctx, "back to the calls", chromedp.Click(chromedp.CSS(`a[href="#/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#calls tr[data-call="`+id+`"] button.unhold`)),
		chromedp.Click(chromedp.CSS(`#calls tr[data-call="`+id+`"] button.unhold`)))
	evA.WaitType(t, "unhold.success", id, sigTimeout)
	waitJS(t, ctx, "the row back to live", row+`?.dataset.localHold === "false" && `+row+`.dataset.state === "live"`)
	do(t, ctx, "click hang up", chromedp.Click(chromedp.CSS(`#calls tr[data-call="`+id+`"] button.hangup`)))
	evA.WaitType(t, "call.ended", id, sigTimeout)
	evB.WaitType(t, "call.ended", idB, sigTimeout)
	waitJS(t, ctx, "the row ended", row+`?.dataset.state === "ended"`)
	if c := a.Call(id); c.State != "ended" || c.LocalHold {
		t.Errorf("A's call after the console's hang-up: %+v", c)
	}
	errs.check(t)
}

func TestConsoleWithoutTokenGetsNoCallData(t *testing.T) {
	t.Parallel()
	const token = "console-secret-token"
	errs := &pageErrors{ignoreNetwork: true}
	ctx := newBrowser(t, errs)
	b := startUAD(t, UADOptions{Name: "B"})
	a := startUAD(t, UADOptions{Name: "A", Token: token})
	evA := a.Events()
	id := a.PlaceCall(b.SIPURI("uad"), nil).ID
	evA.WaitType(t, "call.connected", id, sigTimeout)

	// Without the token: the token form, and nothing of the call.
	do(t, ctx, "open the console", chromedp.Navigate(a.URL()+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText + document.body.innerHTML`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, id) || strings.Contains(text, b.SIPAddr()) {
		t.Errorf("the page without the token shows call data:\n%s", text)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#calls tbody tr").length`)); err != nil || n != 0 {
		t.Errorf("rows without the token: %d (%v)", n, err)
	}

	// With it: the call shows, and the token is in no URL.
	do(t, ctx, "enter the token", chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
	waitJS(t, ctx, "the call's row once the token is given", fmt.Sprintf(`document.querySelector('#calls tr[data-call="%s"]') !== null`, id))
	waitJS(t, ctx, "the event stream connected with the token", `document.querySelector("#conn").textContent.startsWith("connected")`)
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || strings.Contains(loc, token) {
		t.Errorf("page URL %q holds the token (%v)", loc, err)
	}
	a.Hangup(id)
	errs.check(t)
}
