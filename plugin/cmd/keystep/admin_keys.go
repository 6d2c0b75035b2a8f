package main

import (
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystep/keystep/provider/api"
)

func newKeysCmd(f *adminFlags) *cobra.Command {
	cmd := group(&cobra.Command{Use: "keys", Short: "List and rotate the signing keys (ID tokens, SAML assertions)"})
	list := &cobra.Command{
		Use:   "list",
		Short: "List the published signing keys",
		Args:  nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			keys, err := c.SigningKeys(cmd.Context())
			if err != nil {
				return err
			}
			return printKeys(f.out(cmd), keys)
		},
	}
	var use string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make new signing keys that sign from now (the old ones stay published until what they signed expires)",
		Args:  nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			keys, err := c.RotateKeys(cmd.Context(), use)
			if err != nil {
				return err
			}
			return printKeys(f.out(cmd), keys)
		},
	}
	rotate.Flags().StringVar(&use, "use", "", "the `oidc|saml` keys to rotate (required when the server signs for both)")
	cmd.AddCommand(list, rotate)
	return cmd
}

func printKeys(o output, keys api.KeyList) error {
	if o.json {
		return o.object(keys)
	}
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	tw.Write([]byte("USE\tKID\tALG\tSIGNS FROM\tRETIRES\tSIGNING\n"))
	for _, k := range keys.Keys {
		retire := "-"
		if !k.RetireAt.IsZero() {
			retire = k.RetireAt.Format(time.RFC3339)
		}
		signing := ""
		if k.Signing {
			signing = "yes"
		}
		tw.Write([]byte(k.Use + "\t" + k.ID + "\t" + k.Alg + "\t" + k.ActiveAt.Format(time.RFC3339) + "\t" + retire + "\t" + signing + "\n"))
	}
	return tw.Flush()
}
