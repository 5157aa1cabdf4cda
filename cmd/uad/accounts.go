package main

import (
	"errors"

	"github.com/rs/zerolog"

	"uad/api"
	"uad/config"
	"uad/dialog"
	"uad/sip"
)

// Events of the registrations (control contract: field "account", no call).
const (
	eventAccountRegistered = "account.registered"
	eventAccountFailed     = "account.failed"
)

// startAccounts starts registering every configured account, publishing
// account.registered and account.failed on the bus. Passwords are read by
// each attempt (Account.Secret) and never logged or published.
func startAccounts(log zerolog.Logger, cfg *config.Config, ep *sip.Endpoint, publish dialog.EventSink) *sip.Registrations {
	accounts := make([]sip.Account, 0, len(cfg.Accounts))
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		accounts = append(accounts, sip.Account{
			Name:          a.Name,
			AOR:           a.AOR,
			Registrar:     a.Registrar,
			Username:      a.Username,
			Password:      a.Secret,
			OutboundProxy: a.OutboundProxy,
			Transport:     a.Transport,
			Expires:       a.Expires,
		})
	}
	return ep.StartRegistrations(log.With().Str("component", "sip").Logger(), accounts,
		func(name, state string, err error) {
			switch state {
			case sip.RegRegistered:
				publish(dialog.Event{Type: eventAccountRegistered, Fields: map[string]any{"account": name}})
			case sip.RegFailed:
				fields := map[string]any{"account": name}
				if err != nil {
					fields["reason"] = err.Error()
				}
				if e, ok := errors.AsType[*sip.RegisterError](err); ok {
					fields["sip_status"] = e.Status
				}
				publish(dialog.Event{Type: eventAccountFailed, Fields: fields})
			}
		})
}

// accountList serves GET /v1/accounts from the registrations.
func accountList(rs *sip.Registrations) api.Accounts {
	return api.AccountsFunc(func() []api.Account {
		var out []api.Account
		for _, st := range rs.Status() {
			out = append(out, api.Account(st))
		}
		return out
	})
}
