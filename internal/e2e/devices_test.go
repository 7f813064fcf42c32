package e2e

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

func TestDevices(t *testing.T) {
	srv := startOpen(t)
	res, err := srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "kim", Password: defaultPassword,
		InitialDeviceDisplayName: "Kim's phone"})
	if err != nil {
		t.Fatal(err)
	}
	phone := clientFor(t, srv, res.UserID, res.DeviceID, res.AccessToken)
	req := passwordLogin("kim", defaultPassword)
	req.InitialDeviceDisplayName = "Kim's laptop"
	laptop := login(t, srv, req)
	stranger := register(t, srv, "stranger", defaultPassword)

	t.Run("list and get", func(t *testing.T) {
		devs, err := phone.GetDevicesInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		names := map[id.DeviceID]string{}
		for _, d := range devs.Devices {
			names[d.DeviceID] = d.DisplayName
			if d.LastSeenTS <= 0 || d.LastSeenIP != "127.0.0.1" {
				t.Fatalf("device %+v without last seen time and IP", d)
			}
		}
		want := map[id.DeviceID]string{phone.DeviceID: "Kim's phone", laptop.DeviceID: "Kim's laptop"}
		if len(names) != 2 || names[phone.DeviceID] != want[phone.DeviceID] || names[laptop.DeviceID] != want[laptop.DeviceID] {
			t.Fatalf("devices %v, want %v", names, want)
		}
		d, err := phone.GetDeviceInfo(t.Context(), laptop.DeviceID)
		if err != nil || d.DeviceID != laptop.DeviceID || d.DisplayName != "Kim's laptop" {
			t.Fatalf("get laptop: %+v %v", d, err)
		}
		_, err = phone.GetDeviceInfo(t.Context(), "NOSUCHDEVICE")
		wantErr(t, err, mautrix.MNotFound)
		// Another user's device does not exist for kim.
		_, err = phone.GetDeviceInfo(t.Context(), stranger.DeviceID)
		wantErr(t, err, mautrix.MNotFound)
		_, err = srv.Client(t).GetDevicesInfo(t.Context())
		wantErr(t, err, mautrix.MMissingToken)
	})

	t.Run("rename", func(t *testing.T) {
		if err := phone.SetDeviceInfo(t.Context(), laptop.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "Work laptop"}); err != nil {
			t.Fatal(err)
		}
		d, err := laptop.GetDeviceInfo(t.Context(), laptop.DeviceID)
		if err != nil || d.DisplayName != "Work laptop" {
			t.Fatalf("after rename: %+v %v", d, err)
		}
		err = phone.SetDeviceInfo(t.Context(), "NOSUCHDEVICE", &mautrix.ReqDeviceInfo{DisplayName: "x"})
		wantErr(t, err, mautrix.MNotFound)
		err = phone.SetDeviceInfo(t.Context(), stranger.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "hijacked"})
		wantErr(t, err, mautrix.MNotFound)
		d, err = stranger.GetDeviceInfo(t.Context(), stranger.DeviceID)
		if err != nil || d.DisplayName != "registration device" {
			t.Fatalf("stranger's device after kim's rename attempt: %+v %v", d, err)
		}
		// A body without display_name changes nothing but still needs the device.
		st, body := srv.Do(t, "PUT", "/_matrix/client/v3/devices/"+string(laptop.DeviceID), phone.AccessToken, map[string]any{})
		wantStatus(t, "empty PUT", st, body, http.StatusOK, "")
		st, body = srv.Do(t, "PUT", "/_matrix/client/v3/devices/NOSUCHDEVICE", phone.AccessToken, map[string]any{})
		wantStatus(t, "empty PUT of an unknown device", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = srv.Do(t, "PUT", "/_matrix/client/v3/devices/"+string(laptop.DeviceID), phone.AccessToken,
			map[string]any{"display_name": 5})
		wantStatus(t, "numeric display_name", st, body, http.StatusBadRequest, "M_BAD_JSON")
		if d, _ := laptop.GetDeviceInfo(t.Context(), laptop.DeviceID); d == nil || d.DisplayName != "Work laptop" {
			t.Fatalf("name changed by refused requests: %+v", d)
		}
	})

	t.Run("delete one", func(t *testing.T) {
		tablet := login(t, srv, passwordLogin("kim", defaultPassword))
		path := "/_matrix/client/v3/devices/" + string(tablet.DeviceID)
		err := phone.DeleteDevice(t.Context(), tablet.DeviceID, &mautrix.ReqDeleteDevice[any]{})
		var he mautrix.HTTPError
		if !errors.As(err, &he) || he.Response.StatusCode != http.StatusUnauthorized {
			t.Fatalf("delete without auth: %v, want a 401 UIA answer", err)
		}
		st, body := srv.Do(t, "DELETE", path, phone.AccessToken, nil)
		sess := wantUIA(t, "delete without auth", st, body, "m.login.password", "")
		st, body = srv.Do(t, "DELETE", path, phone.AccessToken, map[string]any{"auth": passwordAuth("kim", "wrong password", sess)})
		wantUIA(t, "delete with a wrong password", st, body, "m.login.password", "M_FORBIDDEN")
		// A session opened to delete one device cannot delete another.
		st, body = srv.Do(t, "DELETE", "/_matrix/client/v3/devices/"+string(laptop.DeviceID), phone.AccessToken,
			map[string]any{"auth": passwordAuth("kim", defaultPassword, sess)})
		wantStatus(t, "session of another device", st, body, http.StatusForbidden, "M_FORBIDDEN")
		wantTokenAlive(t, srv, tablet.AccessToken, tablet.UserID)
		wantTokenAlive(t, srv, laptop.AccessToken, laptop.UserID)

		err = phone.DeleteDevice(t.Context(), tablet.DeviceID, &mautrix.ReqDeleteDevice[any]{
			Auth: passwordAuth("kim", defaultPassword, sess)})
		if err != nil {
			t.Fatal(err)
		}
		wantTokenDead(t, srv, tablet.AccessToken)
		_, err = phone.GetDeviceInfo(t.Context(), tablet.DeviceID)
		wantErr(t, err, mautrix.MNotFound)
		err = phone.DeleteDevice(t.Context(), tablet.DeviceID, &mautrix.ReqDeleteDevice[any]{
			Auth: passwordAuth("kim", defaultPassword, "")})
		wantErr(t, err, mautrix.MNotFound)
		// Another user's device cannot be deleted either.
		err = phone.DeleteDevice(t.Context(), stranger.DeviceID, &mautrix.ReqDeleteDevice[any]{
			Auth: passwordAuth("kim", defaultPassword, "")})
		wantErr(t, err, mautrix.MNotFound)
		wantTokenAlive(t, srv, stranger.AccessToken, stranger.UserID)
	})

	t.Run("delete several", func(t *testing.T) {
		a := login(t, srv, passwordLogin("kim", defaultPassword))
		b := login(t, srv, passwordLogin("kim", defaultPassword))
		st, body := srv.Do(t, "POST", "/_matrix/client/v3/delete_devices", phone.AccessToken,
			map[string]any{"devices": []string{string(a.DeviceID), string(b.DeviceID)}})
		sess := wantUIA(t, "delete_devices without auth", st, body, "m.login.password", "")
		wantTokenAlive(t, srv, a.AccessToken, a.UserID)

		st, body = srv.Do(t, "POST", "/_matrix/client/v3/delete_devices", phone.AccessToken, map[string]any{})
		wantStatus(t, "delete_devices without devices", st, body, http.StatusBadRequest, "M_MISSING_PARAM")

		// A stranger's device in the list is left alone; unknown IDs are ignored.
		err := phone.DeleteDevices(t.Context(), &mautrix.ReqDeleteDevices[any]{
			Devices: []id.DeviceID{a.DeviceID, b.DeviceID, stranger.DeviceID, "NOSUCHDEVICE"},
			Auth:    passwordAuth("kim", defaultPassword, sess)})
		if err != nil {
			t.Fatal(err)
		}
		wantTokenDead(t, srv, a.AccessToken)
		wantTokenDead(t, srv, b.AccessToken)
		wantTokenAlive(t, srv, stranger.AccessToken, stranger.UserID)
		devs := deviceIDs(t, phone)
		if slices.Contains(devs, a.DeviceID) || slices.Contains(devs, b.DeviceID) || !slices.Contains(devs, phone.DeviceID) {
			t.Fatalf("devices after delete_devices: %v", devs)
		}
	})
}
