package dialog

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Call states as the control API reports them.
const (
	StateCalling = "calling"
	StateRinging = "ringing"
	StateLive    = "live"
	StateHold    = "hold"
	StateEnded   = "ended"
)

// Reasons a call ended, reported in call.ended.
const (
	EndLocal    = "local"
	EndRemote   = "remote"
	EndRejected = "rejected"
	EndTimeout  = "timeout"
	EndError    = "error"
	EndShutdown = "shutdown"
)

// Media modes of a call.
const (
	MediaEcho    = "echo"
	MediaTone    = "tone"
	MediaSilence = "silence"
	MediaRelay   = "relay"
)

// CallInfo is a snapshot of a call as the control API shows it.
type CallInfo struct {
	ID          string      `json:"id"`
	SIPCallID   string      `json:"sip_call_id"`
	Direction   string      `json:"direction"`
	LocalURI    string      `json:"local_uri"`
	RemoteURI   string      `json:"remote_uri"`
	State       string      `json:"state"`
	LocalHold   bool        `json:"local_hold"`
	RemoteHold  bool        `json:"remote_hold"`
	Pending     *string     `json:"pending"`
	Media       string      `json:"media"`
	Audio       *StreamInfo `json:"audio"`
	Video       *StreamInfo `json:"video"`
	CreatedAt   time.Time   `json:"created_at"`
	ConnectedAt *time.Time  `json:"connected_at,omitempty"`
	EndedAt     *time.Time  `json:"ended_at,omitempty"`
	EndReason   string      `json:"end_reason,omitempty"`
	SIPStatus   int         `json:"sip_status,omitempty"`
}

// StreamInfo describes one media stream of a call.
type StreamInfo struct {
	Direction   string       `json:"direction"`
	Codec       string       `json:"codec"`
	PayloadType uint8        `json:"payload_type"`
	LocalRTP    string       `json:"local_rtp"`
	RemoteRTP   string       `json:"remote_rtp"`
	RelayLocal  string       `json:"relay_local,omitempty"`
	RelayRemote string       `json:"relay_remote,omitempty"`
	HoldTone    *bool        `json:"hold_tone,omitempty"` // audio: false when uad cannot play tones in the codec (pass-through)
	SRTP        *string      `json:"srtp"`                // the SRTP suite in use; null for plain RTP
	Stats       *StreamStats `json:"stats,omitempty"`
}

// StreamStats counts RTP of one stream, each way.
type StreamStats struct {
	PacketsSent     uint64     `json:"packets_sent"`
	BytesSent       uint64     `json:"bytes_sent"`
	PacketsReceived uint64     `json:"packets_received"`
	BytesReceived   uint64     `json:"bytes_received"`
	PacketsLost     int64      `json:"packets_lost"`
	JitterMS        float64    `json:"jitter_ms"`
	LastReceived    *time.Time `json:"last_received,omitempty"`
	SRTPFailed      uint64     `json:"srtp_failed,omitempty"` // SRTP packets dropped for failing authentication
}

// MediaSpec selects what a call's media does: one of the plain modes, or relay to
// a local RTP endpoint. In JSON it is "echo" | "tone" | "silence" | {"relay": "HOST:PORT"}.
type MediaSpec struct {
	Mode  string
	Relay netip.AddrPort // set when Mode is MediaRelay
}

// UnmarshalJSON accepts the contract's string or {"relay": ...} forms.
func (m *MediaSpec) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		switch s {
		case MediaEcho, MediaTone, MediaSilence:
			m.Mode = s
			return nil
		case MediaRelay:
			return errors.New(`media "relay" needs an endpoint: {"relay": "HOST:PORT"}`)
		}
		return fmt.Errorf("unknown media %q: want echo, tone, silence or {\"relay\": \"HOST:PORT\"}", s)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return errors.New(`media must be "echo", "tone", "silence" or {"relay": "HOST:PORT"}`)
	}
	raw, ok := obj["relay"]
	if !ok || len(obj) != 1 {
		return errors.New(`media object must be exactly {"relay": "HOST:PORT"}`)
	}
	var addr string
	if err := json.Unmarshal(raw, &addr); err != nil {
		return errors.New("media relay must be a string HOST:PORT")
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Port() == 0 {
		return fmt.Errorf("media relay %q is not an IP:PORT", addr)
	}
	m.Mode, m.Relay = MediaRelay, ap
	return nil
}

// MarshalJSON writes the same forms UnmarshalJSON reads.
func (m MediaSpec) MarshalJSON() ([]byte, error) {
	if m.Mode == MediaRelay {
		return json.Marshal(map[string]string{"relay": m.Relay.String()})
	}
	return json.Marshal(m.Mode)
}

// PlaceRequest asks for an outgoing call.
type PlaceRequest struct {
	To      string     `json:"to"`
	Video   bool       `json:"video"`
	Media   *MediaSpec `json:"media"`
	Account string     `json:"account"`
	SRTP    string     `json:"srtp"` // off | accept | require; "" = the configured mode
}

// Event is something that happened to a call (or an account), published on the
// daemon's event bus. Fields holds the type-specific members (reason, sip_status, by, digit, account).
type Event struct {
	Type   string
	Call   *CallInfo
	Fields map[string]any
}

// EventSink receives every event. It must not block.
type EventSink func(Event)

// Errors the control API maps to HTTP statuses.
var (
	ErrCallNotFound   = errors.New("call not found")            // 404
	ErrNoMediaPorts   = errors.New("no free RTP ports")         // 503
	ErrShuttingDown   = errors.New("uad is shutting down")      // 503
	ErrNoAnswer       = errors.New("peer did not answer")       // 504
	ErrNotImplemented = errors.New("operation not implemented") // 501
)

// StateError is a request the call's state does not allow (HTTP 409).
type StateError struct{ Msg string }

func (e *StateError) Error() string { return e.Msg }

// RequestError is a malformed or invalid request (HTTP 400).
type RequestError struct{ Msg string }

func (e *RequestError) Error() string { return e.Msg }

// SIPError is a request the peer refused with a SIP status (HTTP 502).
type SIPError struct {
	Status int
	Reason string
}

func (e *SIPError) Error() string { return fmt.Sprintf("peer answered %d %s", e.Status, e.Reason) }
