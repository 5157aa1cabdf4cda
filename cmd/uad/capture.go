package main

import (
	"fmt"
	"os"

	gosip "github.com/emiago/sipgo/sip"

	"uad/config"
	"uad/sip/trace"
)

// newCapture makes the recorder of the calls' SIP messages (trace.*); nil
// when nothing is kept and nothing exported.
func newCapture(cfg *config.Config) (*trace.Recorder, error) {
	var hep *trace.HEP
	if cfg.Trace.HEP != "" {
		var err error
		if hep, err = trace.DialHEP(cfg.Trace.HEP, uint32(os.Getpid())); err != nil {
			return nil, fmt.Errorf("trace.hep: %w", err)
		}
	}
	if cfg.Trace.MessagesPerCall == 0 && hep == nil {
		return nil, nil
	}
	rec := trace.NewRecorder(cfg.Trace.MessagesPerCall, hep)
	rec.SetLimit(int64(cfg.Trace.MaxBytes))
	return rec, nil
}

// captureTracer is the recorder as sipgo's tracer; nil stays an untyped
// nil, so that the endpoint knows there is none.
func captureTracer(rec *trace.Recorder) gosip.SIPTracer {
	if rec == nil {
		return nil
	}
	return rec
}
