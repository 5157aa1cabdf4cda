package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWithAccounts(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	list := []Account{{Name: "bob", AOR: "sip:bob@example.com", State: "registered", Expires: 300}, {Name: "carol", AOR: "sip:carol@example.com", State: "failed", Error: "403 Forbidden"}}
	h := WithAccounts(next, AccountsFunc(func() []Account { return list }))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/accounts", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /v1/accounts = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["name"] != "bob" || got[0]["aor"] != "sip:bob@example.com" || got[0]["state"] != "registered" ||
		got[1]["state"] != "failed" || got[1]["error"] != "403 Forbidden" {
		t.Errorf("GET /v1/accounts = %s", rec.Body)
	}
	if _, ok := got[0]["error"]; ok {
		t.Errorf("a registered account has an error member: %s", rec.Body)
	}

	list = nil
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/accounts", nil))
	if strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("no accounts: %s, want []", rec.Body)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/accounts", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("POST /v1/accounts = %d %s, want 405 with Allow and a JSON error", rec.Code, rec.Body)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/calls", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("GET /v1/calls went to %d, want the next handler", rec.Code)
	}
}
