package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// pushRouteLine is one account's answer, as `device push-route --json`
// prints it.
type pushRouteLine struct {
	Server   string `json:"server"`
	Username string `json:"username"`
	DeviceID string `json:"device_id"`
	State    string `json:"state"` // set | cleared | failed
	Detail   string `json:"detail,omitempty"`
}

func newPushRouteCmd(f *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "push-route ROUTE",
		Short: `Tell every account's server where this device's pushes go ("" stops them)`,
		Long: `Tells the server of every enrolled account where this device's wake-up
pushes go: apns:<hex device token> (Apple Push Notification service) or
fcm:<registration token> (Firebase Cloud Messaging), as the phone app does
when its push token changes. An empty ROUTE ("") stops pushes; sign-in
requests then arrive only while the app listens (keystep device pending
--wait). A malformed route is refused before any server is asked.`,
		Args: nArgs("ROUTE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := f.open()
			if err != nil {
				return err
			}
			route := args[0]
			res, err := a.SetPushRoute(cmd.Context(), route)
			if len(res) == 0 {
				return hinted(err)
			}
			done := "set"
			if route == "" {
				done = "cleared"
			}
			failed := 0
			lines := make([]pushRouteLine, 0, len(res))
			for _, r := range res {
				l := pushRouteLine{Server: r.Enrollment.Server, Username: r.Enrollment.Username, DeviceID: r.Enrollment.DeviceID, State: done}
				if r.Err != nil {
					l.State, l.Detail = "failed", hinted(r.Err).Error()
					failed++
				}
				lines = append(lines, l)
			}
			o := f.out(cmd)
			if o.json {
				if err := o.object(map[string]any{"push_route": route, "accounts": lines}); err != nil {
					return err
				}
			} else {
				for _, l := range lines {
					if l.State == "failed" {
						o.textf("Not changed: %s", l.Detail)
					} else {
						o.textf("Push route %s for %s at %s.", l.State, l.Username, l.Server)
					}
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d servers did not take the push route", failed, len(lines))
			}
			return nil
		},
	}
}
