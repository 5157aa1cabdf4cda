package dialog

import (
	gosip "github.com/emiago/sipgo/sip"
)

// onRequest handles a request of this call's dialog. Requests arrive one at
// a time: the loop serialises them.
func (c *Call) onRequest(req *gosip.Request, tx gosip.ServerTransaction) {
	if req.IsAck() {
		c.onAck(req)
		return
	}
	if c.ended {
		c.dlg.Respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	// RFC 3261 §12.2.2: a CSeq lower than the last one is out of order.
	seq := req.CSeq().SeqNo
	if c.dlg.RemoteSeq != 0 && seq <= c.dlg.RemoteSeq && !(req.Method == gosip.INVITE && seq == c.dlg.RemoteSeq && c.inviteReq == req) {
		c.dlg.Respond(tx, req, 500, "Server Internal Error", nil, warning("CSeq out of order"))
		return
	}
	c.dlg.RemoteSeq = seq
	switch req.Method {
	case gosip.BYE:
		c.dlg.Respond(tx, req, 200, "OK", nil)
		if c.info.Direction == "inbound" && !c.answered {
			c.dlg.Respond(c.inviteTx, c.inviteReq, 487, "Request Terminated", nil)
			c.releaseInvite()
		}
		c.end(EndRemote, 0)
	case gosip.INVITE:
		c.onReinvite(req, tx)
	case gosip.UPDATE:
		if len(req.Body()) == 0 {
			c.dlg.RefreshTarget(req)
			c.dlg.Respond(tx, req, 200, "OK", nil)
			return
		}
		c.dlg.Respond(tx, req, 488, "Not Acceptable Here", nil, warning("session changes are not accepted yet"))
	case gosip.INFO:
		c.dlg.Respond(tx, req, 200, "OK", nil)
	default:
		c.dlg.Respond(tx, req, 405, "Method Not Allowed", nil, gosip.NewHeader("Allow", allowHeader))
	}
}

// onReinvite handles an INVITE inside the dialog. A pending INVITE
// transaction in either direction makes it wait (491 / 500, RFC 3261 §14.2).
func (c *Call) onReinvite(req *gosip.Request, tx gosip.ServerTransaction) {
	if !c.connected && c.unacked != nil {
		c.dlg.Respond(tx, req, 500, "Server Internal Error", nil, gosip.NewHeader("Retry-After", "1"))
		return
	}
	c.dlg.Respond(tx, req, 488, "Not Acceptable Here", nil, warning("session changes are not accepted yet"))
}
