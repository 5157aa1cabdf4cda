package api

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"uad/dialog"
	"uad/sip"
)

// MetricsPath is where Metrics.Serve answers with the Prometheus exposition.
const MetricsPath = "/metrics"

// MetricsConfig is what Metrics reads at scrape time.
type MetricsConfig struct {
	Version string                   // uad_build_info{version}
	Active  func() int               // calls not yet ended
	Calls   func() []dialog.CallInfo // the calls the API lists (up, and ended recently)
	// SIP requests the listeners' guard refused; nil when there is none.
	SIPRefused func() sip.GuardCounts
	// The SIP receive path: stateless OPTIONS, TCP and TLS connections; nil
	// when there is no endpoint.
	SIPTransport func() sip.TransportCounts
	// Bytes of the SIP messages kept for the calls (trace.*); nil when
	// nothing is kept.
	CaptureBytes func() int64
	// Registration accounts; nil when there are none.
	Accounts func() []Account
	// RTP packets the media engine dropped for coming from an address other
	// than the peer's, since it started; nil when there is no engine.
	RTPStray func() uint64
}

// Metrics exposes uad's Prometheus metrics, all named uad_…: counters of
// the events published on the Bus, gauges read from the call layer at scrape
// time, and the API's responses by status. It has a registry of its own, so
// that nothing registered elsewhere in the process leaks into /metrics.
type Metrics struct {
	reg *prometheus.Registry

	calls        *prometheus.CounterVec
	callStatus   *prometheus.CounterVec
	holds        *prometheus.CounterVec
	holdFailures *prometheus.CounterVec
	unholds      *prometheus.CounterVec
	videoEvents  *prometheus.CounterVec
	events       *prometheus.CounterVec
	requests     *prometheus.CounterVec
	reinvites    *prometheus.HistogramVec
	glare        prometheus.Counter
	panics       *prometheus.CounterVec

	mu  sync.Mutex // serialises reading sub and counting what it read
	sub *Subscription
	buf []Record

	stop chan struct{}
	done chan struct{}
}

// callEndReasons are the call.ended reasons of the contract; their series
// exist from the start, so that rate() sees the first call of each kind.
var callEndReasons = []string{
	dialog.EndLocal, dialog.EndRemote, dialog.EndRejected, dialog.EndTimeout, dialog.EndError, dialog.EndShutdown,
}

// NewMetrics starts counting the events published on bus from now on; Close
// stops it.
func NewMetrics(bus *Bus, cfg MetricsConfig) *Metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg:          prometheus.NewRegistry(),
		calls:        counter("uad_calls_total", "Calls ended, by direction and call.ended reason.", "direction", "result"),
		callStatus:   counter("uad_call_status_total", "Calls ended with a SIP status, by that status.", "status"),
		holds:        counter("uad_holds_total", "Holds this side completed, by result.", "result"),
		holdFailures: counter("uad_hold_failures_total", "Failed holds, by SIP status (none: no final response).", "status"),
		unholds:      counter("uad_unholds_total", "Unholds this side completed, by result.", "result"),
		videoEvents:  counter("uad_video_events_total", "Video events, by type.", "type"),
		events:       counter("uad_events_total", "Events published, by type.", "type"),
		requests:     counter("uad_api_requests_total", "Control API responses, by HTTP status.", "code"),
		reinvites: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "uad_reinvite_seconds",
			Help:    "Time from uad's re-INVITE to its final response, by operation (hold, unhold, video-add, video-remove, refresh).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 32},
		}, []string{"op"}),
		glare:  prometheus.NewCounter(prometheus.CounterOpts{Name: "uad_glare_retries_total", Help: "re-INVITEs retried after 491 Request Pending."}),
		panics: counter("uad_panics_total", "Panics recovered, by where: call (the call ended), sip (the request got a 500), media (the stream's call ended).", "where"),
		sub:    bus.Tail(),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	for _, dir := range []string{"inbound", "outbound"} {
		for _, reason := range callEndReasons {
			m.calls.WithLabelValues(dir, reason)
		}
	}
	for _, result := range []string{"success", "failed"} {
		m.holds.WithLabelValues(result)
		m.unholds.WithLabelValues(result)
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "uad_build_info", Help: "Always 1; labelled with the build of the running uad.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(cfg.Version, runtime.Version()).Set(1)

	m.reg.MustRegister(m.calls, m.callStatus, m.holds, m.holdFailures, m.unholds, m.videoEvents,
		m.events, m.requests, m.reinvites, m.glare, m.panics, info, newCallCollector(cfg))
	// The runtime's own metrics, prefixed too: every metric of uad is uad_….
	prometheus.WrapRegistererWithPrefix("uad_", m.reg).MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if stray := cfg.RTPStray; stray != nil {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "uad_rtp_stray_packets_total",
			Help: "RTP packets dropped because they came from an address other than the peer's.",
		}, func() float64 { return float64(stray()) }))
	}
	go m.follow()
	return m
}

// ReinviteDone observes a re-INVITE of uad's (dialog.Observer).
func (m *Metrics) ReinviteDone(op string, _ int, latency time.Duration) {
	m.reinvites.WithLabelValues(op).Observe(latency.Seconds())
}

// GlareRetry counts a retry after 491 (dialog.Observer).
func (m *Metrics) GlareRetry() { m.glare.Inc() }

// Panic counts a panic recovered (dialog.Observer, sip.Config.Recovered).
func (m *Metrics) Panic(where string) { m.panics.WithLabelValues(where).Inc() }

// Close stops counting events.
func (m *Metrics) Close() {
	close(m.stop)
	<-m.done
}

// Serve answers GET /metrics and passes every other request to next.
func (m *Metrics) Serve(next http.Handler) http.Handler {
	exposition := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != MetricsPath {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " not allowed on " + MetricsPath + "; allowed: GET, HEAD"})
			return
		}
		// Count what was published up to now, so that a scrape right after
		// an event sees it.
		m.drain()
		exposition.ServeHTTP(w, r)
	})
}

// Count counts next's responses in uad_api_requests_total{code}. It goes
// outermost, so that refusals of RequireToken count too.
func (m *Metrics) Count(next http.Handler) http.Handler {
	return promhttp.InstrumentHandlerCounter(m.requests, next)
}

// follow counts events as they are published, until Close.
func (m *Metrics) follow() {
	defer close(m.done)
	for {
		more := m.drain()
		select {
		case <-more:
		case <-m.stop:
			return
		}
	}
}

// drain counts the events not counted yet and returns a channel closed when
// more are published.
func (m *Metrics) drain() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	var more <-chan struct{}
	m.buf, more = m.sub.Read(m.buf[:0])
	for _, rec := range m.buf {
		m.count(rec)
	}
	clear(m.buf) // the records' JSON belongs to the backlog: do not pin it here
	return more
}

func (m *Metrics) count(rec Record) {
	if rec.Type == EventsLost {
		// Not an event of the daemon: this reader fell behind the backlog,
		// which at 4096 events read on every publish does not happen.
		return
	}
	m.events.WithLabelValues(rec.Type).Inc()
	if strings.HasPrefix(rec.Type, "video.") {
		m.videoEvents.WithLabelValues(rec.Type).Inc()
	}
	ev := rec.Event
	reason, _ := ev.Fields["reason"].(string)
	status, _ := ev.Fields["sip_status"].(int)
	switch rec.Type {
	case "call.ended":
		dir := ""
		if ev.Call != nil {
			dir = ev.Call.Direction
		}
		m.calls.WithLabelValues(dir, reason).Inc()
		if status != 0 {
			m.callStatus.WithLabelValues(strconv.Itoa(status)).Inc()
		}
	case "hold.success":
		m.holds.WithLabelValues("success").Inc()
	case "hold.failed":
		m.holds.WithLabelValues("failed").Inc()
		label := "none"
		if status != 0 {
			label = strconv.Itoa(status)
		}
		m.holdFailures.WithLabelValues(label).Inc()
	case "unhold.success":
		m.unholds.WithLabelValues("success").Inc()
	case "unhold.failed":
		m.unholds.WithLabelValues("failed").Inc()
	}
}

// callCollector reads the call layer (and the SIP guard) at scrape time. The RTP counters of a
// call live only as long as the call is listed, so it remembers what each
// stream had counted when it was last seen and keeps that once the stream is
// gone: the totals never go down, as a Prometheus counter must not.
type callCollector struct {
	cfg MetricsConfig

	active, holdTone, packets, bytes, refused, lost, account *prometheus.Desc
	rateSources, rateEvicted, refusedSilent                  *prometheus.Desc
	optionsStateless, tcpOpen, tcpRefused, tcpClosed         *prometheus.Desc
	captureBytes                                             *prometheus.Desc

	mu      sync.Mutex
	seen    map[string]dialog.StreamStats // by call id + stream kind, as last seen
	retired dialog.StreamStats            // sum over the streams no longer listed
}

func newCallCollector(cfg MetricsConfig) *callCollector {
	return &callCollector{
		cfg:      cfg,
		active:   prometheus.NewDesc("uad_active_calls", "Calls not yet ended.", nil, nil),
		holdTone: prometheus.NewDesc("uad_hold_tone_streams", "Calls this side holds (state hold) in a codec uad plays tones in: the held party gets the hold tone.", nil, nil),
		packets:  prometheus.NewDesc("uad_rtp_packets_total", "RTP packets of every call's streams, by direction.", []string{"direction"}, nil),
		bytes:    prometheus.NewDesc("uad_rtp_bytes_total", "RTP payload bytes of every call's streams, by direction.", []string{"direction"}, nil),
		refused:  prometheus.NewDesc("uad_sip_refused_total", "SIP requests refused by sip.allow or sip.rate_limit, by reason.", []string{"reason"}, nil),
		lost:     prometheus.NewDesc("uad_rtp_packets_lost_total", "RTP packets the peers sent that never arrived (RFC 3550), every call's streams.", nil, nil),
		account:  prometheus.NewDesc("uad_account_registered", "1 while the account is registered, else 0.", []string{"account", "state"}, nil),
		seen:     map[string]dialog.StreamStats{},

		rateSources:      prometheus.NewDesc("uad_sip_rate_sources", "Source IPs whose request rate sip.rate_limit tracks now (at most sip.rate_sources).", nil, nil),
		rateEvicted:      prometheus.NewDesc("uad_sip_rate_sources_evicted_total", "Tracked sources dropped to make room for new ones before they were idle long enough.", nil, nil),
		refusedSilent:    prometheus.NewDesc("uad_sip_refused_unanswered_total", "Refused UDP requests left unanswered because refusal responses were over their own rate.", nil, nil),
		optionsStateless: prometheus.NewDesc("uad_sip_options_stateless_total", "Out-of-dialog OPTIONS over UDP answered without a transaction (RFC 3261 §8.2.7).", nil, nil),
		captureBytes:     prometheus.NewDesc("uad_sip_capture_bytes", "Bytes of the SIP messages kept for the calls' /sip and /pcap (at most trace.max_bytes).", nil, nil),
		tcpOpen:          prometheus.NewDesc("uad_sip_tcp_connections", "TCP and TLS connections the SIP listeners hold open now.", nil, nil),
		tcpRefused:       prometheus.NewDesc("uad_sip_tcp_refused_total", "TCP and TLS connections closed at accept, by the limit reached.", []string{"limit"}, nil),
		tcpClosed:        prometheus.NewDesc("uad_sip_tcp_closed_total", "TCP and TLS connections uad closed, by reason: idle (sip.tcp_idle_timeout), slow (a message or TLS handshake over sip.tcp_message_timeout).", []string{"reason"}, nil),
	}
}

func (c *callCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.active
	ch <- c.holdTone
	ch <- c.packets
	ch <- c.bytes
	ch <- c.refused
	ch <- c.lost
	ch <- c.account
	ch <- c.rateSources
	ch <- c.rateEvicted
	ch <- c.refusedSilent
	ch <- c.optionsStateless
	ch <- c.tcpOpen
	ch <- c.tcpRefused
	ch <- c.tcpClosed
	ch <- c.captureBytes
}

func (c *callCollector) Collect(ch chan<- prometheus.Metric) {
	var calls []dialog.CallInfo
	if c.cfg.Calls != nil {
		calls = c.cfg.Calls()
	}
	active := 0
	if c.cfg.Active != nil {
		active = c.cfg.Active()
	}
	held := 0
	for _, call := range calls {
		// A call in a codec uad passes through gets no hold tone.
		silent := call.Audio != nil && call.Audio.HoldTone != nil && !*call.Audio.HoldTone
		if call.State == dialog.StateHold && !silent {
			held++
		}
	}
	total := c.rtpTotals(calls)
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(active))
	ch <- prometheus.MustNewConstMetric(c.holdTone, prometheus.GaugeValue, float64(held))
	ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(total.PacketsSent), "sent")
	ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(total.PacketsReceived), "received")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(total.BytesSent), "sent")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(total.BytesReceived), "received")
	ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(max(total.PacketsLost, 0)))
	if c.cfg.Accounts != nil {
		for _, a := range c.cfg.Accounts() {
			v := 0.0
			if a.State == "registered" {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.account, prometheus.GaugeValue, v, a.Name, a.State)
		}
	}
	if c.cfg.SIPRefused != nil {
		r := c.cfg.SIPRefused()
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(r.NotAllowed), "not_allowed")
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(r.RateLimited), "rate_limited")
		ch <- prometheus.MustNewConstMetric(c.refusedSilent, prometheus.CounterValue, float64(r.Unanswered))
		ch <- prometheus.MustNewConstMetric(c.rateSources, prometheus.GaugeValue, float64(r.Sources))
		ch <- prometheus.MustNewConstMetric(c.rateEvicted, prometheus.CounterValue, float64(r.Evicted))
	}
	if c.cfg.CaptureBytes != nil {
		ch <- prometheus.MustNewConstMetric(c.captureBytes, prometheus.GaugeValue, float64(c.cfg.CaptureBytes()))
	}
	if c.cfg.SIPTransport != nil {
		t := c.cfg.SIPTransport()
		ch <- prometheus.MustNewConstMetric(c.optionsStateless, prometheus.CounterValue, float64(t.OptionsAnswered))
		ch <- prometheus.MustNewConstMetric(c.tcpOpen, prometheus.GaugeValue, float64(t.TCPOpen))
		ch <- prometheus.MustNewConstMetric(c.tcpRefused, prometheus.CounterValue, float64(t.TCPRefusedLimit), "max_connections")
		ch <- prometheus.MustNewConstMetric(c.tcpRefused, prometheus.CounterValue, float64(t.TCPRefusedSource), "max_per_source")
		ch <- prometheus.MustNewConstMetric(c.tcpClosed, prometheus.CounterValue, float64(t.TCPClosedIdle), "idle")
		ch <- prometheus.MustNewConstMetric(c.tcpClosed, prometheus.CounterValue, float64(t.TCPClosedSlow), "slow")
	}
}

// rtpTotals sums the RTP counters of every stream ever seen.
func (c *callCollector) rtpTotals(calls []dialog.CallInfo) dialog.StreamStats {
	now := map[string]dialog.StreamStats{}
	for _, call := range calls {
		for kind, s := range map[string]*dialog.StreamInfo{"audio": call.Audio, "video": call.Video} {
			if s != nil && s.Stats != nil {
				now[call.ID+"/"+kind] = *s.Stats
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, last := range c.seen {
		if cur, ok := now[key]; !ok || cur.PacketsSent < last.PacketsSent || cur.PacketsReceived < last.PacketsReceived {
			// Gone, or counting afresh (a new stream under the same key).
			addStats(&c.retired, last)
			delete(c.seen, key)
		}
	}
	total := c.retired
	for key, cur := range now {
		c.seen[key] = cur
		addStats(&total, cur)
	}
	return total
}

func addStats(sum *dialog.StreamStats, s dialog.StreamStats) {
	sum.PacketsSent += s.PacketsSent
	sum.BytesSent += s.BytesSent
	sum.PacketsReceived += s.PacketsReceived
	sum.BytesReceived += s.BytesReceived
	sum.PacketsLost += s.PacketsLost
}
