// Package media is uad's media side: the SDP offer/answer model (built on
// pion/sdp), RTP sockets from a port pool, and the engine that sends and
// relays RTP (pion/rtp) for every call stream.
//
// The package knows nothing of SIP transactions. The dialog layer decides what
// a call's streams should do (mode, agreed direction, hold) and tells a
// CallMedia; the engine makes the packets. Every stream has exactly one sender
// that owns its SSRC, sequence number and timestamp, so RTP stays continuous
// whatever source (echo, relay, tone, hold tone, silence) feeds it.
package media
