package main

import (
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystep/keystep/provider/api"
)

func newKeysCmd(f *adminFlags) *cobra.Command {
	cmd := group(&cobra.Command{Use: "keys", Short: "List and rotate the ID token signing keys"})
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
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make new signing keys that sign from now (the old ones stay published until their tokens expire)",
		Args:  nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			keys, err := c.RotateKeys(cmd.Context())
			if err != nil {
				return err
			}
			return printKeys(f.out(cmd), keys)
		},
	}
	cmd.AddCommand(list, rotate)
	return cmd
}

func printKeys(o output, keys api.KeyList) error {
	if o.json {
		return o.object(keys)
	}
	tw := tabwriter.NewWriter(o.w, 0, 4, 2, ' ', 0)
	tw.Write([]byte("KID\tALG\tSIGNS FROM\tRETIRES\tSIGNING\n"))
	for _, k := range keys.Keys {
		retire := "-"
		if !k.RetireAt.IsZero() {
			retire = k.RetireAt.Format(time.RFC3339)
		}
		signing := ""
		if k.Signing {
			signing = "yes"
		}
		tw.Write([]byte(k.ID + "\t" + k.Alg + "\t" + k.ActiveAt.Format(time.RFC3339) + "\t" + retire + "\t" + signing + "\n"))
	}
	return tw.Flush()
}
