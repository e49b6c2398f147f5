package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/admin"
	"github.com/shiftcast/shiftcast/publishers"
)

// The operator page, driven in headless Chromium against a real `shiftcast
// serve`: the live numbers follow a replayed stream, the pause and resume
// buttons reach the pipeline, and the eligibility lookup lists shifts.
//
// SHIFTCAST_UI_SCREENSHOT=1 also writes the page, under some traffic, to
// docs/operator-page.png (the README's picture).
func TestUI_OperatorPage(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	const token = "ui-e2e-token"
	e := setup(t)
	p := e.serve("--admin-token", token)
	b := newBrowser(t, chrome)

	b.do(chromedp.Navigate(p.url + "/"))
	b.do(chromedp.WaitVisible(chromedp.ID("token")))
	b.do(chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("connect")))
	b.waitText("conn", "live")
	b.waitText("events-total", "0")

	// Numbers update as the pipeline works.
	n := e.replay("ui.jsonl")
	b.waitText("events-total", strconv.Itoa(n))
	b.wait(`document.getElementById('events-outcomes').textContent.startsWith('applied `+strconv.Itoa(n)+` ')`, "all applied")
	b.wait(`Number(document.getElementById('notifications-total').textContent) >= 1`, "a notification built")
	b.wait(`Number(document.getElementById('notif-delivered').textContent) >= 1`, "a notification delivered")
	b.waitText("lag", "0")
	if b.text("recent-none") != "Not available on this server." { // a RecentNotifier is wired
		b.wait(`document.querySelectorAll('#recent tbody tr').length >= 1`, "recent notifications listed")
	}

	// Pause and resume, for each target.
	for _, target := range []string{"events", "notifications"} {
		b.do(chromedp.Click(chromedp.ID("pause-" + target)))
		b.waitText(target+"-state", "paused")
		require.True(t, adminStatus(t, p.url, token).Paused[target], "%s paused", target)
		b.wait(`document.getElementById('pause-`+target+`').disabled && !document.getElementById('resume-`+target+`').disabled`, "only resume offered")
		b.do(chromedp.Click(chromedp.ID("resume-" + target)))
		b.waitText(target+"-state", "running")
		require.False(t, adminStatus(t, p.url, token).Paused[target], "%s resumed", target)
	}

	// Eligibility lookup: the worker's shifts, then one explained.
	b.do(b.fill("lookup-worker", "1"), chromedp.Click(chromedp.ID("lookup-submit")))
	b.wait(`document.querySelectorAll('#lookup-shifts tbody tr').length === 2`, "worker 1's shifts listed")
	rows := evaluate[[]string](b, `[...document.querySelectorAll('#lookup-shifts tbody tr')].map(r => r.dataset.shift)`)
	require.Equal(t, []string{"101", "103"}, rows, "open, future CNA shifts at a facility whose requirements are met")
	b.do(b.fill("lookup-shift", "104"), chromedp.Click(chromedp.ID("lookup-submit")))
	b.wait(`document.getElementById('lookup-verdict')?.dataset.eligible === 'false'`, "shift 104 explained")
	require.Contains(t, b.text("lookup-result"), "not eligible for shift 104")
	b.do(b.fill("lookup-worker", "999999"), b.fill("lookup-shift", ""),
		chromedp.Click(chromedp.ID("lookup-submit")))
	b.wait(`document.getElementById('lookup-error') !== null`, "unknown worker reported")

	// A reload keeps the token (session storage) and reconnects.
	b.do(chromedp.Reload())
	b.waitText("conn", "live")
	b.waitText("events-total", strconv.Itoa(n))
	require.Empty(t, b.exceptions(), "no uncaught exceptions in the page")

	if os.Getenv("SHIFTCAST_UI_SCREENSHOT") != "" {
		screenshot(t, e, b)
	}
}

// The page without admin routes explains how to enable them, and the
// lookup still works.
func TestUI_AdminDisabled(t *testing.T) {
	t.Parallel()
	chrome := chromium(t)
	e := setup(t)
	p := e.serve("--admin-token=")
	b := newBrowser(t, chrome)
	b.do(chromedp.Navigate(p.url + "/"))
	b.do(chromedp.WaitVisible(chromedp.ID("admin-disabled")))
	require.Contains(t, b.text("admin-disabled"), "ADMIN_TOKEN")
	b.waitText("conn", "admin disabled")
	b.do(b.fill("lookup-worker", "1"), chromedp.Click(chromedp.ID("lookup-submit")))
	b.wait(`document.getElementById('lookup-error') !== null`, "unknown worker reported")
	require.Empty(t, b.exceptions())
}

// screenshot puts the pipeline under a few seconds of traffic, shows worker
// 1's shifts and writes the page to docs/operator-page.png.
func screenshot(t *testing.T, e *env, b *browser) {
	pub := publishers.NewEventPublisher(e.js, publishers.EventPublisherOptions{})
	publish := func(typ, id string, data any) {
		line, err := json.Marshal(map[string]any{"type": typ, "id": id, "data": data})
		require.NoError(t, err)
		msg, err := publishers.ParseReplayLine(line, publishers.ReplayDefaults{Source: "e2e", Now: time.Now})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = pub.PublishMsg(ctx, msg)
		require.NoError(t, err)
	}
	for w := 10; w < 60; w++ {
		publish("worker.created", fmt.Sprintf("shot-w-%d", w), map[string]any{"id": w, "name": fmt.Sprintf("Worker %d", w), "profession": "CNA", "is_active": true})
	}
	// A ramp: more shifts each second, so the sparklines have a shape.
	shift := 1000
	for sec := 1; sec <= 8; sec++ {
		start := time.Now()
		for i := 0; i < sec*8; i++ {
			shift++
			day := time.Date(2032, 1, 1, 7, 0, 0, 0, time.UTC).AddDate(0, 0, shift-1000)
			publish("shift.created", fmt.Sprintf("shot-s-%d", shift), map[string]any{"id": shift, "facility_id": 1 + shift%2, "profession": "CNA",
				"start": day.Format(time.RFC3339), "end": day.Add(8 * time.Hour).Format(time.RFC3339)})
		}
		time.Sleep(time.Second - time.Since(start))
	}
	b.do(b.fill("lookup-worker", "1"), b.fill("lookup-shift", ""),
		chromedp.Click(chromedp.ID("lookup-submit")))
	b.wait(`document.querySelectorAll('#lookup-shifts tbody tr').length > 0`, "worker 1's shifts listed")
	b.wait(`Number(document.getElementById('deliveries-rate').textContent) > 0 && Number(document.getElementById('notifications-rate').textContent) > 0`, "notifications flowing")
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	out := filepath.Join("..", "docs", "operator-page.png")
	require.NoError(t, os.MkdirAll(filepath.Dir(out), 0o755))
	require.NoError(t, os.WriteFile(out, png, 0o644))
	t.Logf("wrote %s (%d bytes)", out, len(png))
}

func adminStatus(t *testing.T, base, token string) admin.Status {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/v1/admin/status", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var st admin.Status
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// browser is one headless Chromium tab.
type browser struct {
	t       *testing.T
	ctx     context.Context
	console func() []string
}

// newBrowser starts Chromium with a fresh profile. The flags keep it from
// reaching out to the network (the machine may have none, and Chromium
// then retries refused connections all along).
func newBrowser(t *testing.T, execPath string) *browser {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication"),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// The first action starts the browser; it lives as long as ctx.
	require.NoError(t, chromedp.Do(ctx), "start chromium")

	b := &browser{t: t, ctx: ctx}
	var mu sync.Mutex
	var seen []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == "error" || m.Type == "warning" || m.IsException() {
				t.Logf("browser console %s: %s:%d %s", m.Type, m.URL, m.Line+1, m)
			}
			if m.IsException() {
				mu.Lock()
				seen = append(seen, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, m))
				mu.Unlock()
			}
		}
	}()
	b.console = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, steps...))
}

// wait polls a JavaScript predicate until it holds, bounded.
func (b *browser) wait(expr, what string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(40*time.Second)))
	require.NoError(b.t, err, "waiting for %s (%s)", what, expr)
}

// waitText waits until the element's text is want.
func (b *browser) waitText(id, want string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	expr := fmt.Sprintf(`(document.getElementById(%q)?.textContent ?? '').trim() === %q`, id, want)
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(40*time.Second)))
	require.NoError(b.t, err, "#%s never read %q; it reads %q", id, want, b.text(id))
}

// fill sets a form field's value (chromedp.SetValue refuses "").
func (b *browser) fill(id, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = %q`, id, value))
}

func (b *browser) text(id string) string {
	b.t.Helper()
	return evaluate[string](b, fmt.Sprintf(`(document.getElementById(%q)?.textContent ?? '').trim()`, id))
}

func (b *browser) exceptions() []string { return b.console() }

func evaluate[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(b.t, err, expr)
	return v
}

var (
	chromiumOnce sync.Once
	chromiumPath string
	chromiumWhy  string
)

// chromium returns the path of a Chromium to drive, installing Debian's
// package when none is found and the test runs as root with apt-get. It
// skips the test, saying why, only when none can be had.
func chromium(t *testing.T) string {
	t.Helper()
	chromiumOnce.Do(func() { chromiumPath, chromiumWhy = findOrInstallChromium(t) })
	if chromiumPath == "" {
		t.Skipf("no Chromium for the browser test: %s", chromiumWhy)
	}
	return chromiumPath
}

func findChromium() string {
	if p := os.Getenv("SHIFTCAST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func findOrInstallChromium(t *testing.T) (path, why string) {
	if p := findChromium(); p != "" {
		return p, ""
	}
	if os.Geteuid() != 0 {
		return "", "none installed, and not root to `apt-get install chromium`"
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return "", "none installed, and no apt-get to install Debian's chromium package"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, apt, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out, 15))
		}
		return nil
	}
	start := time.Now()
	install := []string{"install", "-y", "--no-install-recommends", "chromium", "fonts-liberation"}
	if err := run(install...); err != nil {
		// The package lists may be missing or stale.
		if uerr := run("update"); uerr != nil {
			return "", uerr.Error()
		}
		if err := run(install...); err != nil {
			return "", err.Error()
		}
	}
	t.Logf("installed chromium with apt-get in %s", time.Since(start).Round(time.Second))
	if p := findChromium(); p != "" {
		return p, ""
	}
	return "", "apt-get installed chromium, but no chromium binary was found"
}
