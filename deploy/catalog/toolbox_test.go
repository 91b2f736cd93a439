package catalog

import "testing"

// The toolbox's own containers follow the rules of an app's services: a
// reservation within the limit (restic has none), and where it comes from.
func TestToolboxMemory(t *testing.T) {
	m := ToolboxMemory()
	if len(m.Services) != 4 {
		t.Fatalf("toolbox memory = %+v, want bot, guard, proxy, backup", m)
	}
	for _, s := range m.Services {
		if s.Reservation <= 0 || (s.Limit > 0 && s.Reservation > s.Limit) || s.Source == "" ||
			(s.Basis == Measured && (s.Date == "" || s.Figure > s.Reservation)) || (s.Basis != Measured && s.Basis != Upstream) {
			t.Errorf("%+v", s)
		}
		if got := Toolbox(s.Service); got != s {
			t.Errorf("Toolbox(%s) = %+v", s.Service, got)
		}
	}
	m.Services[0].Reservation = 1 // a copy: the table stays as it is
	if Toolbox(ToolboxBot).Reservation == 1 {
		t.Error("ToolboxMemory shares its table")
	}
	defer func() {
		if recover() == nil {
			t.Error("Toolbox(nope) did not panic")
		}
	}()
	Toolbox("nope")
}
