package clientapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// Third-party identifiers (email addresses, phone numbers) and identity
// servers: Tributary has none — no 3PID is ever bound to an account, no
// identity server is trusted (capabilities say m.3pid_changes is off). These
// endpoints answer what the spec provides for a server in that position.

const (
	codeThreepidDenied      = "M_THREEPID_DENIED"
	codeThreepidNotFound    = "M_THREEPID_NOT_FOUND"
	codeThreepidAuthFailed  = "M_THREEPID_AUTH_FAILED"
	codeThreepidUnsupported = "M_THREEPID_MEDIUM_NOT_SUPPORTED"
	codeServerNotTrusted    = "M_SERVER_NOT_TRUSTED"
)

func (a *API) registerThreePID(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/account/3pid", auth, func(c *gin.Context) { httpx.OK(c, gin.H{"threepids": []any{}}) })
	for _, medium := range []string{"email", "msisdn"} {
		g.POST("/account/3pid/"+medium+"/requestToken", threepidRefusal(medium, http.StatusBadRequest,
			codeThreepidUnsupported, "This server does not let accounts add email addresses or phone numbers"))
		g.POST("/register/"+medium+"/requestToken", threepidRefusal(medium, http.StatusForbidden,
			codeThreepidDenied, "This server does not register accounts with email addresses or phone numbers"))
		g.POST("/account/password/"+medium+"/requestToken", threepidRefusal(medium, http.StatusBadRequest,
			codeThreepidNotFound, "No account on this server has an email address or phone number"))
	}
	// Adding needs a validation session, which cannot exist here.
	g.POST("/account/3pid/add", auth, threepidSession(http.StatusBadRequest))
	g.POST("/account/3pid", auth, threepidSession(http.StatusForbidden)) // deprecated form
	g.POST("/account/3pid/bind", auth, func(c *gin.Context) {
		var body struct {
			ClientSecret string `json:"client_secret"`
			IDServer     string `json:"id_server"`
			SID          string `json:"sid"`
		}
		if err := httpx.DecodeJSON(c, &body); err != nil {
			httpx.Fail(c, err)
			return
		}
		if body.ClientSecret == "" || body.IDServer == "" || body.SID == "" {
			httpx.Fail(c, types.MissingParam("client_secret, id_server and sid are required"))
			return
		}
		httpx.Fail(c, types.NewError(http.StatusBadRequest, codeServerNotTrusted, "This server trusts no identity server"))
	})
	// Nothing is bound, so nothing is left bound: removing succeeds.
	unbind := func(c *gin.Context) {
		var body struct {
			Address string `json:"address"`
			Medium  string `json:"medium"`
		}
		if err := httpx.DecodeJSON(c, &body); err != nil {
			httpx.Fail(c, err)
			return
		}
		if body.Address == "" || body.Medium == "" {
			httpx.Fail(c, types.MissingParam("address and medium are required"))
			return
		}
		httpx.OK(c, gin.H{"id_server_unbind_result": "no-support"})
	}
	g.POST("/account/3pid/delete", auth, unbind)
	g.POST("/account/3pid/unbind", auth, unbind)
}

// threepidRefusal answers a requestToken endpoint: the body is checked,
// then the request refused with the spec's error for this server.
func threepidRefusal(medium string, status int, code, msg string) gin.HandlerFunc {
	return func(c *gin.Context) {
		var body struct {
			ClientSecret string `json:"client_secret"`
			Email        string `json:"email"`
			Country      string `json:"country"`
			PhoneNumber  string `json:"phone_number"`
			SendAttempt  *int   `json:"send_attempt"`
		}
		if err := httpx.DecodeJSON(c, &body); err != nil {
			httpx.Fail(c, err)
			return
		}
		missing := body.ClientSecret == "" || body.SendAttempt == nil
		if medium == "email" {
			missing = missing || body.Email == ""
		} else {
			missing = missing || body.Country == "" || body.PhoneNumber == ""
		}
		if missing {
			httpx.Fail(c, types.MissingParam("client_secret, send_attempt and the %s are required", medium))
			return
		}
		httpx.Fail(c, types.NewError(status, code, "%s", msg))
	}
}

// threepidSession answers the endpoints that complete a validation session.
func threepidSession(status int) gin.HandlerFunc {
	return func(c *gin.Context) {
		var body map[string]any
		if err := httpx.DecodeJSON(c, &body); err != nil {
			httpx.Fail(c, err)
			return
		}
		httpx.Fail(c, types.NewError(status, codeThreepidAuthFailed, "No such validation session: this server validates no email addresses or phone numbers"))
	}
}
