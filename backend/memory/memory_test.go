package memory_test

import (
	"testing"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

func TestConformance(t *testing.T) {
	s := memory.New()
	clients := 0
	backendtest.Run(t, backendtest.Harness{
		New: func(t testing.TB, lock string) elector.Backend {
			clients++
			return s.Backend(lock, "client"+string(rune('a'+clients%26)))
		},
		PlantRaw: func(t testing.TB, lock string, raw []byte) { s.PlantRaw(lock, raw) },
		Raw: func(t testing.TB, lock string) []byte {
			b, _ := s.Raw(lock)
			return b
		},
	})
}
