package elector

// SetParkHook lets tests know when the driver waits on time or a watch.
func SetParkHook(e *Elector, f func(parked bool)) { e.parkHook = f }
