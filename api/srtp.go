package api

import (
	"context"
	"net/http"

	"uad/dialog"
)

// Rekeyer is what POST /v1/calls/{id}/srtp/rekey asks of the dialog layer:
// new SRTP keys for a call, offered in a re-INVITE.
type Rekeyer interface {
	Rekey(ctx context.Context, id string) (dialog.CallInfo, error)
}

// routeRekey adds the re-key endpoint when the dialog layer can re-key.
func (s *server) routeRekey(calls Calls) {
	if rk, ok := calls.(Rekeyer); ok {
		s.mux.HandleFunc("POST /v1/calls/{id}/srtp/rekey", func(w http.ResponseWriter, r *http.Request) {
			info, err := rk.Rekey(r.Context(), r.PathValue("id"))
			s.reply(w, r, http.StatusOK, info, err)
		})
	}
}
