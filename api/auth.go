package api

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// RequireToken lets through only requests with "Authorization: Bearer token"
// (api.token_file); the others get 401. An empty token lets everything through.
func RequireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Constant time, so that response timing does not reveal the token.
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="uad"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "missing or wrong bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
