package dialog

import (
	"context"
	"fmt"
	"sort"
)

// BridgeInfo is a bridge as the control API shows it.
type BridgeInfo struct {
	ID    string    `json:"id"`
	Calls [2]string `json:"calls"`
}

// bridgeLeg is a call's side of a bridge: uad as a back-to-back endpoint
// relays RTP between its peer and the partner call's peer.
type bridgeLeg struct {
	id      string
	partner *Call
}

// Bridge-related settings (calls.bridge_hold, calls.bridge_leg_end).
const (
	BridgeHoldTone    = "tone"    // the other party hears the hold tone
	BridgeHoldSilence = "silence" // or silence
	BridgeEndKeep     = "keep"    // a leg that ends leaves the other up
	BridgeEndHangup   = "hangup"  // or ends it
)

// CreateBridge relays media between two live calls.
func (m *Manager) CreateBridge(ctx context.Context, ids []string) (BridgeInfo, error) {
	if len(ids) != 2 || ids[0] == ids[1] {
		return BridgeInfo{}, &RequestError{Msg: `"calls" must name two different calls`}
	}
	var legs [2]*Call
	for i, id := range ids {
		c, info, err := m.call(id)
		if err != nil {
			return BridgeInfo{}, fmt.Errorf("call %s: %w", id, err)
		}
		if c == nil {
			return BridgeInfo{}, &StateError{Msg: fmt.Sprintf("call %s has ended (%s)", id, info.EndReason)}
		}
		legs[i] = c
	}
	// Each leg's loop checks and joins in turn: two requests for one call
	// cannot both succeed. No lock is held meanwhile: a loop may be ending
	// its call, which takes bridgeMu.
	b := BridgeInfo{ID: newCallID(), Calls: [2]string{ids[0], ids[1]}}
	for i, c := range legs {
		var err error
		partner := legs[1-i]
		if !c.run(ctx, func() { err = c.joinBridge(b.ID, partner) }) {
			err = errEnded
		}
		if err != nil {
			if i == 1 {
				legs[0].run(ctx, func() { legs[0].leaveBridge("") })
			}
			return BridgeInfo{}, err
		}
	}
	m.med.Bridge(legs[0].audio, legs[1].audio)
	for _, c := range legs {
		c.run(ctx, func() { c.applyMedia(); c.syncPartnerHold() })
	}
	m.bridgeMu.Lock()
	m.bridges[b.ID] = b
	m.bridgeMu.Unlock()
	return b, nil
}

// Bridges lists the bridges.
func (m *Manager) Bridges() []BridgeInfo {
	m.bridgeMu.Lock()
	defer m.bridgeMu.Unlock()
	out := make([]BridgeInfo, 0, len(m.bridges))
	for _, b := range m.bridges {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// DeleteBridge unbridges; both calls stay up with their own media again.
func (m *Manager) DeleteBridge(ctx context.Context, id string) (BridgeInfo, error) {
	m.bridgeMu.Lock()
	b, ok := m.bridges[id]
	delete(m.bridges, id)
	m.bridgeMu.Unlock()
	if !ok {
		return BridgeInfo{}, fmt.Errorf("bridge %s: %w", id, ErrBridgeNotFound)
	}
	for _, cid := range b.Calls {
		if c, _, _ := m.call(cid); c != nil {
			c.run(ctx, func() { c.leaveBridge(b.ID) })
		}
	}
	return b, nil
}

// ErrBridgeNotFound is an unknown bridge id (HTTP 404).
var ErrBridgeNotFound = fmt.Errorf("%w (bridge)", ErrCallNotFound)

// joinBridge makes the call a leg of bridge id (on its loop).
func (c *Call) joinBridge(id string, partner *Call) error {
	switch {
	case c.ended:
		return errEnded
	case !c.connected || c.remote == nil:
		return &StateError{Msg: fmt.Sprintf("call %s is not live yet", c.id)}
	case c.bridge != nil:
		return &StateError{Msg: fmt.Sprintf("call %s is already in bridge %s", c.id, c.bridge.id)}
	}
	// uad converts between the codecs it encodes (G.711, G.722); a codec it
	// passes through can only be bridged to a leg that sends the same.
	if !c.params.Send.Known() {
		theirs := ""
		if snap := partner.Snapshot(); snap != nil && snap.Audio != nil {
			theirs = snap.Audio.Codec
		}
		if theirs != c.params.Send.String() {
			return &StateError{Msg: fmt.Sprintf("call %s sends %s, which uad passes through and cannot convert; call %s sends %s",
				c.id, c.params.Send, partner.id, theirs)}
		}
	}
	c.bridge = &bridgeLeg{id: id, partner: partner}
	return nil
}

// leaveBridge ends this call's part in a bridge (id "" = any) and restores
// its own media.
func (c *Call) leaveBridge(id string) {
	if c.bridge == nil || id != "" && c.bridge.id != id {
		return
	}
	c.m.med.Unbridge(c.audio, c.bridge.partner.audio)
	c.bridge = nil
	c.partnerHeld = false
	if !c.ended {
		c.applyMedia()
	}
}

// syncPartnerHold tells the bridge partner whether this leg is on hold,
// either way, so its party hears the hold tone (or silence) meanwhile.
func (c *Call) syncPartnerHold() {
	if c.bridge == nil {
		return
	}
	held := c.localHold || c.remoteHold
	partner, id := c.bridge.partner, c.bridge.id
	partner.post(func() {
		if partner.bridge == nil || partner.bridge.id != id || partner.partnerHeld == held {
			return
		}
		partner.partnerHeld = held
		partner.applyMedia()
	})
}

// bridgeLegEnded reports the end of this call to its bridge partner, which
// stays up or ends as calls.bridge_leg_end says.
func (c *Call) bridgeLegEnded() {
	if c.bridge == nil {
		return
	}
	b := c.bridge
	c.m.bridgeMu.Lock()
	delete(c.m.bridges, b.id)
	c.m.bridgeMu.Unlock()
	c.m.med.Unbridge(c.audio, b.partner.audio)
	c.bridge = nil
	hangup := c.cfg.BridgeLegEnd == BridgeEndHangup
	partner := b.partner
	partner.post(func() {
		if partner.bridge == nil || partner.bridge.id != b.id {
			return
		}
		partner.bridge = nil
		partner.partnerHeld = false
		partner.emit("bridge.ended", map[string]any{"bridge": b.id, "reason": "leg ended"})
		if hangup {
			partner.hangup(EndLocal)
			return
		}
		partner.applyMedia()
	})
}
