package routes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// API serves the appservice-only client endpoints.
type API struct {
	registry *registry.Registry
	auth     *Authenticator
	bridging *bridging.Service
	client   *http.Client
}

// NewAPI builds the handlers.
func NewAPI(reg *registry.Registry, auth *Authenticator, b *bridging.Service) *API {
	return &API{registry: reg, auth: auth, bridging: b, client: &http.Client{Timeout: 15 * time.Second}}
}

// Register adds the routes.
func (a *API) Register(r gin.IRouter) {
	auth := httpx.RequireAuth(a.auth)
	r.POST("/_matrix/client/v1/appservice/:appserviceId/ping", auth, a.ping)
	r.POST(batchSendPath, auth, a.batchSend)
	a.registerThirdParty(r)
}

// POST /_matrix/client/v1/appservice/{appserviceId}/ping
func (a *API) ping(c *gin.Context) {
	p := httpx.PrincipalOf(c)
	as := a.registry.ByID(c.Param("appserviceId"))
	if as == nil || p.AppServiceID != as.Reg.ID {
		httpx.Fail(c, types.Forbidden("Only the appservice itself may ping it"))
		return
	}
	var body struct {
		TransactionID string `json:"transaction_id"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if as.Reg.URL == "" {
		httpx.Fail(c, types.NewError(http.StatusBadRequest, "M_URL_NOT_SET", "The appservice has no URL"))
		return
	}
	start := time.Now()
	if err := a.call(c.Request.Context(), as, body.TransactionID); err != nil {
		httpx.Fail(c, err)
		return
	}
	took := time.Since(start).Milliseconds()
	// The appservice answers: what waits for it goes now, whatever the
	// retry backoff said.
	a.auth.reach.answered(as.Reg.ID)
	httpx.OK(c, gin.H{"duration_ms": took})
}

// call POSTs /_matrix/app/v1/ping and maps failures to the spec's errcodes.
func (a *API) call(ctx context.Context, as *registry.AppService, txnID string) error {
	payload := map[string]any{}
	if txnID != "" {
		payload["transaction_id"] = txnID
	}
	raw, _ := json.Marshal(payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(as.Reg.URL, "/")+"/_matrix/app/v1/ping",
		bytes.NewReader(raw))
	if err != nil {
		return types.NewError(http.StatusBadGateway, "M_CONNECTION_FAILED", "Invalid appservice URL")
	}
	req.Header.Set("Authorization", "Bearer "+as.Reg.ServerToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return types.NewError(http.StatusGatewayTimeout, "M_CONNECTION_TIMEOUT", "The appservice did not answer in time")
		}
		return types.NewError(http.StatusBadGateway, "M_CONNECTION_FAILED", "Could not reach the appservice")
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return types.NewError(http.StatusBadGateway, "M_BAD_STATUS", "The appservice answered %d", resp.StatusCode).
			With("status", resp.StatusCode).With("body", b.String())
	}
	return nil
}
