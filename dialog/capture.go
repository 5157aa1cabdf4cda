package dialog

import (
	"uad/sip/trace"
)

// SetCapture attaches the recorder that keeps each call's SIP messages;
// calls created before it have none.
func (m *Manager) SetCapture(rec *trace.Recorder) { m.capture = rec }

// openCapture starts keeping the messages of the call's dialog.
func (c *Call) openCapture(sipCallID string) {
	c.capture.Store(c.m.capture.Open(sipCallID))
	c.sipCallID = sipCallID
}

// Messages returns the SIP messages kept of a call, oldest first, and how
// many older ones were dropped; calls ended keep theirs while listed.
func (m *Manager) Messages(id string) ([]trace.Message, uint64, error) {
	m.mu.Lock()
	ring, ok := m.rings[id]
	if c, up := m.calls[id]; up {
		ring, ok = c.capture.Load(), true
	}
	m.mu.Unlock()
	if !ok {
		return nil, 0, ErrCallNotFound
	}
	msgs, dropped := ring.Messages()
	return msgs, dropped, nil
}
