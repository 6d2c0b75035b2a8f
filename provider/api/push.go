package api

// PathPushRoute sets the calling device's push route, the address its
// wake-up pushes go to: PUT PushRoute → 200 PushRoute. It is authenticated
// like every device API call. push_route is required: "apns:<hex device
// token>", "fcm:<registration token>", or "" to stop pushes.
const PathPushRoute = DevicePrefix + "/push-route"

// PushRoute is a device's push route, in the request and the answer of
// PathPushRoute.
type PushRoute struct {
	PushRoute string `json:"push_route"`
}
