package dialog

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"uad/dialog/clock"
)

// MinSessionExpires is the smallest session interval uad accepts (RFC 4028 §5).
const MinSessionExpires = 90 * time.Second

// sessionTimer is the RFC 4028 state of a call: how often the session must
// be refreshed and whether this side does it. A session that is not
// refreshed in time ends, so a call whose peer vanished (held or not) ends.
type sessionTimer struct {
	interval  time.Duration // 0 = no session timer
	refresher bool          // this side sends the refreshes
	timer     clock.Timer   // the next refresh (or its retry) when we refresh
	expiry    clock.Timer   // the end of a session nobody refreshed
	deadline  time.Time     // when expiry fires
	due       bool          // a refresh waits for the dialog to be free
	// What a refused refresh said, for its retry.
	lastMinSE  string
	retryAfter time.Duration
	tries422   int // refreshes re-sent at once after 422
}

func (st *sessionTimer) stop() {
	stopTimer(st.timer)
	stopTimer(st.expiry)
	st.timer, st.expiry = nil, nil
}

// parseSessionExpires reads "delta-seconds[;refresher=uac|uas]".
func parseSessionExpires(v string) (time.Duration, string, bool) {
	parts := strings.Split(v, ";")
	secs, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || secs <= 0 {
		return 0, "", false
	}
	refresher := ""
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return time.Duration(secs) * time.Second, refresher, true
}

// headers is what requests and responses share for reading headers.
type headers interface {
	GetHeader(name string) gosip.Header
	GetHeaders(name string) []gosip.Header
}

func headerValue(m headers, names ...string) string {
	for _, n := range names {
		if h := m.GetHeader(n); h != nil {
			return h.Value()
		}
	}
	return ""
}

// supportsTimer reports whether a message lists the timer extension.
func supportsTimer(m headers) bool {
	for _, name := range []string{"Supported", "k", "Require"} {
		for _, h := range m.GetHeaders(name) {
			for _, ext := range strings.Split(h.Value(), ",") {
				if strings.EqualFold(strings.TrimSpace(ext), "timer") {
					return true
				}
			}
		}
	}
	return false
}

// tooBrief answers 422 when a request's Session-Expires is below our
// minimum (RFC 4028 §8.1). It reports whether it did.
func (c *Call) tooBrief(req *gosip.Request, tx gosip.ServerTransaction) bool {
	se, _, ok := parseSessionExpires(headerValue(req, "Session-Expires", "x"))
	if !ok || se >= MinSessionExpires {
		return false
	}
	c.respond(tx, req, 422, "Session Interval Too Small", nil, minSEHeader())
	return true
}

func minSEHeader() gosip.Header {
	return gosip.NewHeader("Min-SE", strconv.Itoa(int(MinSessionExpires/time.Second)))
}

// timerHeadersForRequest are the headers of an INVITE/UPDATE we send.
func (c *Call) timerHeadersForRequest() []gosip.Header {
	interval := c.st.interval
	if interval == 0 {
		interval = c.cfg.SessionExpires
	}
	if interval == 0 {
		return nil
	}
	hdrs := []gosip.Header{minSEHeader()} // Supported: timer goes with every INVITE
	role := "uac"
	if c.st.interval != 0 && !c.st.refresher {
		role = "uas" // keep the peer as refresher
	}
	return append(hdrs, gosip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=%s", int(interval/time.Second), role)))
}

// takeRequestTimer adopts the session timer of an INVITE or UPDATE we
// answer and returns the headers for our 2xx.
func (c *Call) takeRequestTimer(req *gosip.Request) []gosip.Header {
	se, refresher, ok := parseSessionExpires(headerValue(req, "Session-Expires", "x"))
	uacTimer := supportsTimer(req)
	if !ok {
		if c.cfg.SessionExpires == 0 {
			return nil
		}
		// The peer did not ask: we still keep the session alive ourselves.
		se, refresher = c.cfg.SessionExpires, "uas"
		if uacTimer {
			refresher = "uac"
		}
	}
	if refresher == "" {
		refresher = "uas"
		if uacTimer {
			refresher = "uac"
		}
	}
	if refresher == "uac" && !uacTimer {
		refresher = "uas"
	}
	c.st.interval = se
	c.st.refresher = refresher == "uas"
	c.armSessionTimer()
	hdrs := []gosip.Header{gosip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=%s", int(se/time.Second), refresher))}
	if uacTimer {
		hdrs = append(hdrs, gosip.NewHeader("Require", "timer"))
	}
	return hdrs
}

// takeResponseTimer adopts the session timer of a 2xx to our INVITE/UPDATE.
func (c *Call) takeResponseTimer(res *gosip.Response) {
	se, refresher, ok := parseSessionExpires(headerValue(res, "Session-Expires", "x"))
	if !ok {
		// The peer does not do session timers: refresh alone (RFC 4028 §7.2).
		se, refresher = c.cfg.SessionExpires, "uac"
		if c.st.interval != 0 {
			se = c.st.interval
		}
		if se == 0 {
			return
		}
	}
	c.st.interval = se
	c.st.refresher = refresher != "uas"
	c.armSessionTimer()
}

// armSessionTimer (re)starts the timers after a refresh: the refresher
// refreshes at half the interval; a session nobody refreshed ends the
// smaller of 32 s and a third of the interval before it expires (RFC 4028
// §10), whichever side we are.
func (c *Call) armSessionTimer() {
	c.st.stop()
	c.st.due, c.st.tries422 = false, 0
	if c.st.interval == 0 || c.ended {
		return
	}
	if c.st.refresher {
		c.st.timer = c.after(c.st.interval/2, c.refreshSession)
	}
	left := c.st.interval - min(32*time.Second, c.st.interval/3)
	c.st.deadline = c.clock.Now().Add(left)
	c.st.expiry = c.after(left, c.sessionExpired)
}

func (c *Call) sessionExpired() {
	if c.ended {
		return
	}
	c.log.Warn().Dur("interval", c.st.interval).Msg("session not refreshed: hanging up")
	c.sendBye()
	c.end(EndTimeout, 0)
}
