package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"uad/api"
	"uad/dialog"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

const (
	defaultAPI = "http://127.0.0.1:8089"

	// A stream silent for three keepalive periods is dead, though TCP may not know.
	eventsIdleTimeout = 45 * time.Second
	reconnectMin      = 250 * time.Millisecond
	reconnectMax      = 5 * time.Second
)

var (
	errUsage  = errors.New("usage")
	errOutput = errors.New("writing the output")
)

// action does a client command with its positional arguments, once its flags
// are parsed.
type action func(ctx context.Context, c *apiClient, args []string) error

// clientCommand is one CLI client command.
type clientCommand struct {
	usage string                     // after "uad "
	flags func(*flag.FlagSet) action // registers the command's own flags
}

// clientCommands are keyed by their name; "video" has two words.
var clientCommands = map[string]clientCommand{
	"call":         {"call URI [--video] [--media echo|tone|silence|relay:HOST:PORT] [--account NAME]", placeCall},
	"calls":        {"calls [--json]", listCalls},
	"answer":       {"answer ID [--media echo|tone|silence|relay:HOST:PORT]", answerCall},
	"hangup":       {"hangup ID", callRequest("DELETE", "")},
	"hold":         {"hold ID", callRequest("POST", "/hold")},
	"unhold":       {"unhold ID", callRequest("DELETE", "/hold")},
	"video remove": {"video remove ID", callRequest("DELETE", "/video")},
	"video add":    {"video add ID", callRequest("POST", "/video")},
	"video reply":  {"video reply ID --accept|--reject", replyVideo},
	"dtmf":         {"dtmf ID DIGITS [--duration 100ms]", sendDTMF},
	"events":       {"events", streamEvents},
	"version":      {"version", printVersion},
}

// runClient runs a client command; handled is false when args name none.
// Global flags (--api, --token-file) may come before or after the command.
func runClient(args []string, stdout, stderr io.Writer) (exitCode int, handled bool) {
	globals, rest := leadingGlobals(args)
	if len(rest) == 0 {
		return 0, false
	}
	name, rest := rest[0], rest[1:]
	if name == "video" {
		if len(rest) == 0 || clientCommands["video "+rest[0]].flags == nil {
			fmt.Fprintf(stderr, "uad: usage: %s\n", videoUsage())
			return 2, true
		}
		name, rest = "video "+rest[0], rest[1:]
	}
	cmd, ok := clientCommands[name]
	if !ok {
		return 0, false
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cmd.run(ctx, name, append(globals, rest...), stdout, stderr), true
}

func videoUsage() string {
	var usages []string
	for name, cmd := range clientCommands {
		if strings.HasPrefix(name, "video ") {
			usages = append(usages, "uad "+cmd.usage)
		}
	}
	slices.Sort(usages)
	return strings.Join(usages, " | ")
}

// leadingGlobals splits off the global flags given before the command name.
func leadingGlobals(args []string) (globals, rest []string) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		name, _, inline := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if name != "api" && name != "token-file" {
			break
		}
		n := 2
		if inline {
			n = 1
		}
		n = min(n, len(args))
		globals, args = append(globals, args[:n]...), args[n:]
	}
	return globals, args
}

func (cmd clientCommand) run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported on one line below
	var apiURL, tokenFile string
	fs.StringVar(&apiURL, "api", "", "control API URL (default $UAD_API, else "+defaultAPI+")")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the API token (default: the token in $UAD_TOKEN)")
	act := cmd.flags(fs)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: uad %s\n", cmd.usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "uad: %s: %v; usage: uad %s\n", name, err, cmd.usage)
		return 2
	}
	c, err := newAPIClient(apiURL, tokenFile, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "uad: %v\n", err)
		return 1
	}
	err = act(ctx, c, pos)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "uad: usage: uad %s\n", cmd.usage)
		return 2
	case isType[*reachError](err):
		fmt.Fprintf(stderr, "uad: %v\n", err)
	default:
		fmt.Fprintf(stderr, "uad: %s: %v\n", name, err)
	}
	return 1
}

// parseInterspersed parses flags wherever they are among the positional
// arguments, which it returns; those after "--" are all positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

func placeCall(fs *flag.FlagSet) action {
	video := fs.Bool("video", false, "offer video as well as audio")
	media := fs.String("media", "", "echo, tone, silence or relay:HOST:PORT (default: the config's calls.media)")
	account := fs.String("account", "", "place the call through this account")
	return func(ctx context.Context, c *apiClient, args []string) error {
		if len(args) != 1 {
			return errUsage
		}
		req := struct {
			To      string `json:"to"`
			Video   bool   `json:"video"`
			Media   any    `json:"media,omitempty"`
			Account string `json:"account,omitempty"`
		}{args[0], *video, mediaJSON(*media), *account}
		var call dialog.CallInfo
		if err := c.do(ctx, "POST", "/v1/calls", req, &call); err != nil {
			return err
		}
		return c.print(call.ID + "\n")
	}
}

// mediaJSON turns the --media flag into the API's MEDIA; the API validates it.
func mediaJSON(spec string) any {
	if spec == "" {
		return nil
	}
	if addr, ok := strings.CutPrefix(spec, "relay:"); ok {
		return map[string]string{"relay": addr}
	}
	return spec
}

func listCalls(fs *flag.FlagSet) action {
	asJSON := fs.Bool("json", false, "print the API's JSON")
	return func(ctx context.Context, c *apiClient, args []string) error {
		if len(args) != 0 {
			return errUsage
		}
		var raw json.RawMessage
		if err := c.do(ctx, "GET", "/v1/calls", nil, &raw); err != nil {
			return err
		}
		if *asJSON {
			return c.print(string(raw) + "\n")
		}
		var calls []dialog.CallInfo
		if err := json.Unmarshal(raw, &calls); err != nil {
			return fmt.Errorf("reading the reply: %w", err)
		}
		var buf bytes.Buffer
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tDIRECTION\tREMOTE\tAUDIO\tLOCAL_HOLD\tREMOTE_HOLD")
		for _, call := range calls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", call.ID, call.State, call.Direction, call.RemoteURI,
				stream(call.Audio), yesNo(call.LocalHold), yesNo(call.RemoteHold))
		}
		tw.Flush()
		return c.print(buf.String())
	}
}

// stream shows a stream as DIRECTION/CODEC, or "-" when there is none.
func stream(s *dialog.StreamInfo) string {
	switch {
	case s == nil:
		return "-"
	case s.Codec == "":
		return s.Direction
	}
	return s.Direction + "/" + s.Codec
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// callRequest is a command that sends a request without a body to one call.
func callRequest(method, suffix string) func(*flag.FlagSet) action {
	return func(*flag.FlagSet) action {
		return func(ctx context.Context, c *apiClient, args []string) error {
			if len(args) != 1 {
				return errUsage
			}
			return c.changeCall(ctx, method, args[0], suffix, nil)
		}
	}
}

func answerCall(fs *flag.FlagSet) action {
	media := fs.String("media", "", "echo, tone, silence or relay:HOST:PORT (default: the config's calls.media)")
	return func(ctx context.Context, c *apiClient, args []string) error {
		if len(args) != 1 {
			return errUsage
		}
		var body any
		if m := mediaJSON(*media); m != nil {
			body = map[string]any{"media": m}
		}
		return c.changeCall(ctx, "POST", args[0], "/answer", body)
	}
}

func replyVideo(fs *flag.FlagSet) action {
	accept := fs.Bool("accept", false, "accept the peer's video offer")
	reject := fs.Bool("reject", false, "reject the peer's video offer")
	return func(ctx context.Context, c *apiClient, args []string) error {
		if len(args) != 1 || *accept == *reject {
			return errUsage
		}
		return c.changeCall(ctx, "POST", args[0], "/video/reply", map[string]bool{"accept": *accept})
	}
}

func sendDTMF(fs *flag.FlagSet) action {
	duration := fs.Duration("duration", 0, "how long each digit lasts (default: the API's, 100ms)")
	return func(ctx context.Context, c *apiClient, args []string) error {
		if len(args) != 2 {
			return errUsage
		}
		req := struct {
			Digits     string `json:"digits"`
			DurationMS int64  `json:"duration_ms,omitempty"`
		}{args[1], duration.Milliseconds()}
		return c.do(ctx, "POST", callPath(args[0], "/dtmf"), req, nil)
	}
}

func printVersion(*flag.FlagSet) action {
	return func(_ context.Context, c *apiClient, args []string) error {
		if len(args) != 0 {
			return errUsage
		}
		return c.print("uad " + version + "\n")
	}
}

// apiClient talks to the control API.
type apiClient struct {
	base           string
	token          string
	http           *http.Client
	stdout, stderr io.Writer
}

func newAPIClient(apiURL, tokenFile string, stdout, stderr io.Writer) (*apiClient, error) {
	if apiURL == "" {
		apiURL = os.Getenv("UAD_API")
	}
	if apiURL == "" {
		apiURL = defaultAPI
	}
	if !strings.Contains(apiURL, "://") {
		apiURL = "http://" + apiURL // HOST:PORT, as in api.listen
	}
	token := os.Getenv("UAD_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		token = string(b)
	}
	return &apiClient{
		base:   strings.TrimRight(apiURL, "/"),
		token:  strings.TrimSpace(token),
		http:   &http.Client{},
		stdout: stdout,
		stderr: stderr,
	}, nil
}

// reachError is a request that got no HTTP response.
type reachError struct {
	api string
	err error
}

func (e *reachError) Error() string {
	return fmt.Sprintf("cannot reach the API at %s: %v", e.api, e.err)
}

// apiError is the API's error reply.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d: %s", e.status, e.msg) }

// readAPIError turns an error reply into an apiError with a one-line message.
func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		msg = body.Error
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &apiError{status: resp.StatusCode, msg: strings.Join(strings.Fields(msg), " ")}
}

func callPath(id, suffix string) string { return "/v1/calls/" + url.PathEscape(id) + suffix }

// send makes a request; body, when not nil, is sent as JSON.
func (c *apiClient) send(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("API URL %q: %w", c.base, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	switch {
	case err == nil:
		return resp, nil
	case ctx.Err() != nil:
		return nil, errors.New("interrupted")
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err // the URL is in the message already
	}
	return nil, &reachError{api: c.base, err: err}
}

// do makes a request and decodes a successful reply into out (unless nil).
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readAPIError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	return nil
}

// changeCall sends a request to a call and prints the call as it is after.
func (c *apiClient) changeCall(ctx context.Context, method, id, suffix string, body any) error {
	var call dialog.CallInfo
	if err := c.do(ctx, method, callPath(id, suffix), body, &call); err != nil {
		return err
	}
	return c.print(fmt.Sprintf("%s %s audio=%s video=%s\n", call.ID, call.State, stream(call.Audio), stream(call.Video)))
}

// print writes s to stdout at once, flushing it if stdout buffers.
func (c *apiClient) print(s string) error {
	if _, err := io.WriteString(c.stdout, s); err != nil {
		return fmt.Errorf("%w: %v", errOutput, err)
	}
	if f, ok := c.stdout.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			return fmt.Errorf("%w: %v", errOutput, err)
		}
	}
	return nil
}

func streamEvents(*flag.FlagSet) action {
	return func(ctx context.Context, c *apiClient, args []string) error {
		if len(args) != 0 {
			return errUsage
		}
		return c.events(ctx)
	}
}

// resumePoint is the last event seen, as Last-Event-ID: BOOT:SEQ, so that the
// API reports events.lost if the daemon restarted meanwhile.
type resumePoint struct {
	boot string
	seq  uint64
	ok   bool
}

func (p resumePoint) String() string {
	seq := strconv.FormatUint(p.seq, 10)
	if p.boot == "" {
		return seq
	}
	return p.boot + ":" + seq
}

// events prints the event stream until ctx ends, resuming it whenever the
// connection drops. It fails when the API cannot be reached at first or
// refuses the request.
func (c *apiClient) events(ctx context.Context) error {
	var at resumePoint
	everConnected := false
	delay := reconnectMin
	for {
		connected, err := c.readEvents(ctx, &at)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errOutput), isType[*apiError](err), !connected && !everConnected:
			return err
		case connected:
			fmt.Fprintf(c.stderr, "uad: events: %v; reconnecting\n", err)
			everConnected, delay = true, reconnectMin
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, reconnectMax)
	}
}

// readEvents prints the events of one connection, and records in at where to
// resume. connected tells whether the API answered the request.
func (c *apiClient) readEvents(ctx context.Context, at *resumePoint) (connected bool, err error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	header := http.Header{"Accept": {"text/event-stream"}}
	if at.ok {
		header.Set("Last-Event-ID", at.String())
	}
	resp, err := c.send(streamCtx, "GET", "/v1/events", nil, header)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, readAPIError(resp)
	}
	boot := resp.Header.Get(api.HeaderBoot)
	if seq, err := strconv.ParseUint(resp.Header.Get(api.HeaderSeq), 10, 64); err == nil && !at.ok {
		*at = resumePoint{boot: boot, seq: seq, ok: true}
	}
	idle := time.AfterFunc(eventsIdleTimeout, cancel)
	defer idle.Stop()

	r := bufio.NewReader(resp.Body)
	var id, data string
	var hasID bool
	for {
		line, err := r.ReadString('\n')
		switch {
		case err == nil:
		case ctx.Err() == nil && streamCtx.Err() != nil:
			return true, fmt.Errorf("no data for %v", eventsIdleTimeout)
		case errors.Is(err, io.EOF):
			return true, errors.New("the API closed the stream")
		default:
			return true, err
		}
		idle.Reset(eventsIdleTimeout)
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" { // the end of an event
			if seq, err := strconv.ParseUint(id, 10, 64); hasID && err == nil {
				*at = resumePoint{boot: boot, seq: seq, ok: true}
			}
			if data != "" {
				if err := c.print(data + "\n"); err != nil {
					return true, err
				}
			}
			id, data, hasID = "", "", false
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id, hasID = value, true
		case "data":
			if data != "" {
				data += "\n"
			}
			data += value
		}
	}
}

func isType[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}
