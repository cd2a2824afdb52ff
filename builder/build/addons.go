package build

import (
	"fmt"

	"github.com/kubebake/kubebake/builder/render"
)

// pullSecret renders the add-ons' image pull Secret for a private
// registry from the login in the environment variables the spec's
// credentials entry for registry.host names. The values are never put in
// an error.
func pullSecret(d *data) (render.File, error) {
	reg := d.s.Registry.Host
	for i, c := range d.s.Credentials {
		if c.Registry != reg {
			continue
		}
		user, _ := d.o.lookupEnv(c.UsernameEnv)
		pass, _ := d.o.lookupEnv(c.PasswordEnv)
		if user == "" || pass == "" {
			return render.File{}, fmt.Errorf("registry.private: the add-ons' image pull secret needs the login for %s: set %s and %s in the environment (credentials[%d].usernameEnv and credentials[%d].passwordEnv name them)",
				reg, c.UsernameEnv, c.PasswordEnv, i, i)
		}
		return render.PullSecret(d.s, user, pass)
	}
	return render.File{}, fmt.Errorf("registry.private is true, so the add-ons need an image pull secret for %s, but credentials has no entry for it: add {registry: %s, usernameEnv: HARBOR_USERNAME, passwordEnv: HARBOR_PASSWORD} to credentials and set those variables", reg, reg)
}
