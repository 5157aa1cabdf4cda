// Command holdlat measures hold and resume driven from the control API: it
// places N calls from one uad to another, then holds and resumes each call
// in turn and reports the latency from the API request to its answer (uad
// answers once hold.success / unhold.success is reached), p50 and p99.
//
//	go run ./tests/load/holdlat -api 127.0.0.1:8089 -to sip:b@127.0.0.1:5070 -calls 100 -rounds 5
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"time"
)

func main() {
	api := flag.String("api", "127.0.0.1:8089", "control API of the uad that places and holds the calls")
	to := flag.String("to", "", "SIP URI of the uad (or any peer) that answers them")
	n := flag.Int("calls", 100, "calls up at once")
	rounds := flag.Int("rounds", 5, "hold/resume rounds over every call")
	flag.Parse()
	if *to == "" {
		fmt.Fprintln(os.Stderr, "holdlat: -to is required")
		os.Exit(2)
	}
	base := "http://" + *api
	client := &http.Client{Timeout: 40 * time.Second}
	do := func(method, path string, body any) (int, error) {
		var b bytes.Buffer
		if body != nil {
			_ = json.NewEncoder(&b).Encode(body)
		}
		req, _ := http.NewRequest(method, base+path, &b)
		res, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		var call struct {
			ID    string `json:"id"`
			State string `json:"state"`
		}
		_ = json.NewDecoder(res.Body).Decode(&call)
		if method == http.MethodPost && path == "/v1/calls" {
			ids = append(ids, call.ID)
		}
		return res.StatusCode, nil
	}
	for i := 0; i < *n; i++ {
		if st, err := do(http.MethodPost, "/v1/calls", map[string]any{"to": *to}); err != nil || st != http.StatusCreated {
			fmt.Fprintf(os.Stderr, "holdlat: call %d: status %d %v\n", i, st, err)
			os.Exit(1)
		}
	}
	// Wait until every call is live.
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Get(base + "/v1/calls")
		if err == nil {
			var calls []struct{ State string }
			_ = json.NewDecoder(res.Body).Decode(&calls)
			res.Body.Close()
			live := 0
			for _, c := range calls {
				if c.State == "live" {
					live++
				}
			}
			if live >= *n {
				break
			}
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "holdlat: calls did not all go live")
			os.Exit(1)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var hold, unhold []time.Duration
	failed := 0
	for r := 0; r < *rounds; r++ {
		for _, id := range ids {
			for _, method := range []string{http.MethodPost, http.MethodDelete} {
				start := time.Now()
				st, err := do(method, "/v1/calls/"+id+"/hold", nil)
				d := time.Since(start)
				if err != nil || st != http.StatusOK {
					failed++
					continue
				}
				if method == http.MethodPost {
					hold = append(hold, d)
				} else {
					unhold = append(unhold, d)
				}
			}
		}
	}
	for _, id := range ids {
		_, _ = do(http.MethodDelete, "/v1/calls/"+id, nil)
	}
	fmt.Printf("calls %d, rounds %d, failed requests %d\n", *n, *rounds, failed)
	report("hold   (API -> hold.success)", hold)
	report("unhold (API -> unhold.success)", unhold)
}

var ids []string

func report(name string, d []time.Duration) {
	if len(d) == 0 {
		fmt.Printf("%s: no samples\n", name)
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	p := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	fmt.Printf("%s: n=%d p50=%v p99=%v max=%v\n", name, len(d), p(0.50).Round(10*time.Microsecond), p(0.99).Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond))
}
