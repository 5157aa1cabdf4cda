package config

import (
	"errors"
	"net"
)

// DefaultMessagesPerCall is trace.messages_per_call when the file does not set it.
const DefaultMessagesPerCall = 200

// MaxMessagesPerCall bounds trace.messages_per_call: each message kept
// costs its size in memory for the call's life and the API's retention.
const MaxMessagesPerCall = 10000

// DefaultTraceMaxBytes is trace.max_bytes when the file does not set it.
const DefaultTraceMaxBytes = 64 << 20

// Trace is the capture of SIP messages per call, and their export.
type Trace struct {
	MessagesPerCall int    `yaml:"messages_per_call"` // kept per call for the API and console; 0 = none
	MaxBytes        int    `yaml:"max_bytes"`         // the messages of all calls together; ended calls' go first; 0 = no limit
	HEP             string `yaml:"hep"`               // HOST:PORT to send every message to as HEP3 over UDP; "" = none
}

func (d *decoder) validateTrace(t *Trace) {
	if t.MessagesPerCall < 0 || t.MessagesPerCall > MaxMessagesPerCall {
		d.check("trace.messages_per_call", errors.New("must be between 0 and 10000"))
	}
	if t.MaxBytes < 0 {
		d.check("trace.max_bytes", errors.New("must not be negative (0 = no limit)"))
	}
	if t.HEP != "" {
		err := checkHostPort(t.HEP)
		if _, _, perr := net.SplitHostPort(t.HEP); err == nil && perr != nil {
			err = errors.New("must be HOST:PORT")
		}
		d.check("trace.hep", quoted(t.HEP, err))
	}
}
