package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apiClient talks to uad's control API.
type apiClient struct {
	base   string
	token  string
	client *http.Client
}

func newAPIClient(addr, token string) *apiClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	return &apiClient{base: "http://" + addr, token: token, client: &http.Client{Timeout: 60 * time.Second, Transport: tr}}
}

func (a *apiClient) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		if len(data) > 200 {
			data = data[:200]
		}
		return fmt.Errorf("%s %s = %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

type apiCall struct {
	ID        string `json:"id"`
	SIPCallID string `json:"sip_call_id"`
	State     string `json:"state"`
}

func (a *apiClient) listCalls(ctx context.Context) ([]apiCall, error) {
	var out []apiCall
	err := a.do(ctx, http.MethodGet, "/v1/calls", nil, http.StatusOK, &out)
	return out, err
}

func (a *apiClient) hold(ctx context.Context, id string) error {
	return a.do(ctx, http.MethodPost, "/v1/calls/"+id+"/hold", nil, http.StatusOK, nil)
}

func (a *apiClient) bridge(ctx context.Context, id1, id2 string) error {
	return a.do(ctx, http.MethodPost, "/v1/bridges", map[string]any{"calls": []string{id1, id2}}, http.StatusCreated, nil)
}

// metrics reads uad's Prometheus exposition and returns the values of the
// named samples (without labels) that it has.
func (a *apiClient) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics = %d", resp.StatusCode)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if ok && want[name] {
			if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				out[name] = v
			}
		}
	}
	return out, nil
}
