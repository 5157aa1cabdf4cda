package api

import (
	"net/http"
)

// AccountsPath is where WithAccounts lists the registrations.
const AccountsPath = "/v1/accounts"

// Account is one registration as GET /v1/accounts lists it.
type Account struct {
	Name    string `json:"name"`
	AOR     string `json:"aor"`
	State   string `json:"state"`             // registering | registered | unregistered | failed
	Error   string `json:"error,omitempty"`   // why the last attempt failed, when failed
	Expires int    `json:"expires,omitempty"` // seconds the registrar granted last
}

// Accounts is what GET /v1/accounts asks of the registration layer.
type Accounts interface {
	AccountList() []Account
}

// AccountsFunc adapts a function to Accounts.
type AccountsFunc func() []Account

// AccountList calls f.
func (f AccountsFunc) AccountList() []Account { return f() }

// WithAccounts serves GET /v1/accounts from accounts and passes every other
// request to next. Put it inside RequireToken, like the handler of New.
func WithAccounts(next http.Handler, accounts Accounts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != AccountsPath {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{
				Error: "method " + r.Method + " not allowed on " + AccountsPath + "; allowed: GET, HEAD",
			})
			return
		}
		list := accounts.AccountList()
		if list == nil {
			list = []Account{} // [] rather than null
		}
		writeJSON(w, http.StatusOK, list)
	})
}
