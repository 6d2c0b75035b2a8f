// One timed method per method of flows.Tx, each the same three lines
// (written from flows.Tx by a script). A method of flows.Tx missing here
// still works, untimed, through the embedded Tx; TestEveryMethodIsTimed
// names it.

package storetiming

import (
	"context"
	"time"

	"github.com/keystep/keystep/flows"
)

// Operations: the names of the timed methods, as Observer is told them.
const (
	opCreateAuthRequest           = "CreateAuthRequest"
	opGetAuthRequest              = "GetAuthRequest"
	opBindAuthRequest             = "BindAuthRequest"
	opAttachSignIn                = "AttachSignIn"
	opCompleteAuthRequest         = "CompleteAuthRequest"
	opSaveAuthCode                = "SaveAuthCode"
	opRedeemAuthCode              = "RedeemAuthCode"
	opPurgeAuthRequests           = "PurgeAuthRequests"
	opCreateOIDCToken             = "CreateOIDCToken"
	opGetOIDCToken                = "GetOIDCToken"
	opGetOIDCTokenByRefresh       = "GetOIDCTokenByRefresh"
	opRotateRefreshToken          = "RotateRefreshToken"
	opRevokeOIDCToken             = "RevokeOIDCToken"
	opRevokeGrant                 = "RevokeGrant"
	opPurgeOIDCTokens             = "PurgeOIDCTokens"
	opCreateKey                   = "CreateKey"
	opListKeys                    = "ListKeys"
	opRetireKey                   = "RetireKey"
	opLinkSubject                 = "LinkSubject"
	opLinkedAccount               = "LinkedAccount"
	opGetDirectoryLinks           = "GetDirectoryLinks"
	opGetDirectoryLinkByAccount   = "GetDirectoryLinkByAccount"
	opPutDirectoryLink            = "PutDirectoryLink"
	opMarkDirectorySeen           = "MarkDirectorySeen"
	opListUnseenDirectoryLinks    = "ListUnseenDirectoryLinks"
	opCountDirectoryLinks         = "CountDirectoryLinks"
	opStageDirectoryEntries       = "StageDirectoryEntries"
	opListStagedDirectoryEntries  = "ListStagedDirectoryEntries"
	opClearStagedDirectoryEntries = "ClearStagedDirectoryEntries"
	opGetDirectoryState           = "GetDirectoryState"
	opPutDirectoryState           = "PutDirectoryState"
	opListDirectoryStates         = "ListDirectoryStates"
	opAcquireLease                = "AcquireLease"
	opReleaseLease                = "ReleaseLease"
	opCreateSession               = "CreateSession"
	opGetSession                  = "GetSession"
	opTouchSession                = "TouchSession"
	opDeleteSession               = "DeleteSession"
	opPurgeSessions               = "PurgeSessions"
	opCreateAccount               = "CreateAccount"
	opGetAccount                  = "GetAccount"
	opGetAccountByUsername        = "GetAccountByUsername"
	opListAccounts                = "ListAccounts"
	opUpdateAccount               = "UpdateAccount"
	opSetAccountState             = "SetAccountState"
	opLockActiveAccount           = "LockActiveAccount"
	opPurgeRemovedAccounts        = "PurgeRemovedAccounts"
	opCreateDevice                = "CreateDevice"
	opGetDevice                   = "GetDevice"
	opListDevices                 = "ListDevices"
	opUnregisterDevice            = "UnregisterDevice"
	opUpdateDevicePushRoute       = "UpdateDevicePushRoute"
	opCreateInvitation            = "CreateInvitation"
	opGetInvitationByTokenHash    = "GetInvitationByTokenHash"
	opRedeemInvitation            = "RedeemInvitation"
	opRevokeInvitations           = "RevokeInvitations"
	opCreateSignIn                = "CreateSignIn"
	opGetSignIn                   = "GetSignIn"
	opListPendingSignIns          = "ListPendingSignIns"
	opDecideSignIn                = "DecideSignIn"
	opCancelPendingSignIns        = "CancelPendingSignIns"
	opUseNonce                    = "UseNonce"
	opPurgeNonces                 = "PurgeNonces"
	opCreateCode                  = "CreateCode"
	opGetCode                     = "GetCode"
	opListActiveCodes             = "ListActiveCodes"
	opRedeemCode                  = "RedeemCode"
	opRecordCodeAttempt           = "RecordCodeAttempt"
	opRevokeCodes                 = "RevokeCodes"
	opPurgeCodes                  = "PurgeCodes"
	opGetAccountLimits            = "GetAccountLimits"
	opRecordCodeFailure           = "RecordCodeFailure"
	opResetCodeFailures           = "ResetCodeFailures"
	opUnlockCodes                 = "UnlockCodes"
	opBlockPush                   = "BlockPush"
	opHitRateLimit                = "HitRateLimit"
	opPurgeRateLimits             = "PurgeRateLimits"
	opAppendAudit                 = "AppendAudit"
	opListAudit                   = "ListAudit"
)

// Ops lists every operation name an Observer may be told.
var Ops = []string{opInTx, opCreateAuthRequest, opGetAuthRequest, opBindAuthRequest, opAttachSignIn, opCompleteAuthRequest, opSaveAuthCode, opRedeemAuthCode, opPurgeAuthRequests, opCreateOIDCToken, opGetOIDCToken, opGetOIDCTokenByRefresh, opRotateRefreshToken, opRevokeOIDCToken, opRevokeGrant, opPurgeOIDCTokens, opCreateKey, opListKeys, opRetireKey, opLinkSubject, opLinkedAccount, opGetDirectoryLinks, opGetDirectoryLinkByAccount, opPutDirectoryLink, opMarkDirectorySeen, opListUnseenDirectoryLinks, opCountDirectoryLinks, opStageDirectoryEntries, opListStagedDirectoryEntries, opClearStagedDirectoryEntries, opGetDirectoryState, opPutDirectoryState, opListDirectoryStates, opAcquireLease, opReleaseLease, opCreateSession, opGetSession, opTouchSession, opDeleteSession, opPurgeSessions, opCreateAccount, opGetAccount, opGetAccountByUsername, opListAccounts, opUpdateAccount, opSetAccountState, opLockActiveAccount, opPurgeRemovedAccounts, opCreateDevice, opGetDevice, opListDevices, opUnregisterDevice, opUpdateDevicePushRoute, opCreateInvitation, opGetInvitationByTokenHash, opRedeemInvitation, opRevokeInvitations, opCreateSignIn, opGetSignIn, opListPendingSignIns, opDecideSignIn, opCancelPendingSignIns, opUseNonce, opPurgeNonces, opCreateCode, opGetCode, opListActiveCodes, opRedeemCode, opRecordCodeAttempt, opRevokeCodes, opPurgeCodes, opGetAccountLimits, opRecordCodeFailure, opResetCodeFailures, opUnlockCodes, opBlockPush, opHitRateLimit, opPurgeRateLimits, opAppendAudit, opListAudit}

func (t timedTx) CreateAuthRequest(ctx context.Context, a1 flows.
	AuthRequest) error {
	defer t.o.done(opCreateAuthRequest, time.Now())
	return t.Tx.CreateAuthRequest(ctx, a1)
}

func (t timedTx) GetAuthRequest(ctx context.Context, a1 string) (flows.
	AuthRequest, error) {
	defer t.o.done(opGetAuthRequest, time.Now())
	return t.Tx.GetAuthRequest(ctx, a1)
}

func (t timedTx) BindAuthRequest(ctx context.Context, a1 string, a2 []byte) error {
	defer t.o.done(opBindAuthRequest, time.Now())
	return t.Tx.BindAuthRequest(ctx, a1, a2)
}

func (t timedTx) AttachSignIn(ctx context.Context, a1 string, a2 string) error {
	defer t.o.done(opAttachSignIn, time.Now())
	return t.Tx.AttachSignIn(ctx, a1, a2)
}

func (t timedTx) CompleteAuthRequest(ctx context.Context, a1 string, a2 flows.
	AuthResult) error {
	defer t.o.done(opCompleteAuthRequest, time.Now())
	return t.Tx.CompleteAuthRequest(ctx, a1, a2)
}

func (t timedTx) SaveAuthCode(ctx context.Context, a1 string, a2 []byte) error {
	defer t.o.done(opSaveAuthCode, time.Now())
	return t.Tx.SaveAuthCode(ctx, a1, a2)
}

func (t timedTx) RedeemAuthCode(ctx context.Context, a1 []byte, a2 time.Time) (flows.
	AuthRequest, error) {
	defer t.o.done(opRedeemAuthCode, time.Now())
	return t.Tx.RedeemAuthCode(ctx, a1, a2)
}

func (t timedTx) PurgeAuthRequests(ctx context.Context, a1 time.Time) error {
	defer t.o.done(opPurgeAuthRequests, time.Now())
	return t.Tx.PurgeAuthRequests(ctx, a1)
}

func (t timedTx) CreateOIDCToken(ctx context.Context, a1 flows.
	OIDCToken) error {
	defer t.o.done(opCreateOIDCToken, time.Now())
	return t.Tx.CreateOIDCToken(ctx, a1)
}

func (t timedTx) GetOIDCToken(ctx context.Context, a1 string) (flows.
	OIDCToken, error) {
	defer t.o.done(opGetOIDCToken, time.Now())
	return t.Tx.GetOIDCToken(ctx, a1)
}

func (t timedTx) GetOIDCTokenByRefresh(ctx context.Context, a1 []byte) (flows.
	OIDCToken, error) {
	defer t.o.done(opGetOIDCTokenByRefresh, time.Now())
	return t.Tx.GetOIDCTokenByRefresh(ctx, a1)
}

func (t timedTx) RotateRefreshToken(ctx context.Context, a1 []byte, a2 flows.
	OIDCToken, a3 time.Time) error {
	defer t.o.done(opRotateRefreshToken, time.Now())
	return t.Tx.RotateRefreshToken(ctx, a1, a2, a3)
}

func (t timedTx) RevokeOIDCToken(ctx context.Context, a1 string, a2 time.Time) error {
	defer t.o.done(opRevokeOIDCToken, time.Now())
	return t.Tx.RevokeOIDCToken(ctx, a1, a2)
}

func (t timedTx) RevokeGrant(ctx context.Context, a1 string, a2 time.Time) (int, error) {
	defer t.o.done(opRevokeGrant, time.Now())
	return t.Tx.RevokeGrant(ctx, a1, a2)
}

func (t timedTx) PurgeOIDCTokens(ctx context.Context, a1 time.Time) error {
	defer t.o.done(opPurgeOIDCTokens, time.Now())
	return t.Tx.PurgeOIDCTokens(ctx, a1)
}

func (t timedTx) CreateKey(ctx context.Context, a1 flows.
	StoredKey) error {
	defer t.o.done(opCreateKey, time.Now())
	return t.Tx.CreateKey(ctx, a1)
}

func (t timedTx) ListKeys(ctx context.Context, a1 flows.
	KeyUse, a2 time.Time) ([]flows.
	StoredKey, error) {
	defer t.o.done(opListKeys, time.Now())
	return t.Tx.ListKeys(ctx, a1, a2)
}

func (t timedTx) RetireKey(ctx context.Context, a1 string, a2 time.Time) error {
	defer t.o.done(opRetireKey, time.Now())
	return t.Tx.RetireKey(ctx, a1, a2)
}

func (t timedTx) LinkSubject(ctx context.Context, a1 string, a2 string, a3 string) error {
	defer t.o.done(opLinkSubject, time.Now())
	return t.Tx.LinkSubject(ctx, a1, a2, a3)
}

func (t timedTx) LinkedAccount(ctx context.Context, a1 string, a2 string) (string, error) {
	defer t.o.done(opLinkedAccount, time.Now())
	return t.Tx.LinkedAccount(ctx, a1, a2)
}

func (t timedTx) GetDirectoryLinks(ctx context.Context, a1 string, a2 []string) ([]flows.
	DirectoryLink, error) {
	defer t.o.done(opGetDirectoryLinks, time.Now())
	return t.Tx.GetDirectoryLinks(ctx, a1, a2)
}

func (t timedTx) GetDirectoryLinkByAccount(ctx context.Context, a1 string) (flows.
	DirectoryLink, error) {
	defer t.o.done(opGetDirectoryLinkByAccount, time.Now())
	return t.Tx.GetDirectoryLinkByAccount(ctx, a1)
}

func (t timedTx) PutDirectoryLink(ctx context.Context, a1 flows.
	DirectoryLink) error {
	defer t.o.done(opPutDirectoryLink, time.Now())
	return t.Tx.PutDirectoryLink(ctx, a1)
}

func (t timedTx) MarkDirectorySeen(ctx context.Context, a1 string, a2 string, a3 []string) error {
	defer t.o.done(opMarkDirectorySeen, time.Now())
	return t.Tx.MarkDirectorySeen(ctx, a1, a2, a3)
}

func (t timedTx) ListUnseenDirectoryLinks(ctx context.Context, a1 string, a2 string, a3 string, a4 int) ([]flows.
	DirectoryLink, error) {
	defer t.o.done(opListUnseenDirectoryLinks, time.Now())
	return t.Tx.ListUnseenDirectoryLinks(ctx, a1, a2, a3, a4)
}

func (t timedTx) CountDirectoryLinks(ctx context.Context, a1 string) (int, error) {
	defer t.o.done(opCountDirectoryLinks, time.Now())
	return t.Tx.CountDirectoryLinks(ctx, a1)
}

func (t timedTx) StageDirectoryEntries(ctx context.Context, a1 string, a2 string, a3 []flows.
	DirectoryEntry) error {
	defer t.o.done(opStageDirectoryEntries, time.Now())
	return t.Tx.StageDirectoryEntries(ctx, a1, a2, a3)
}

func (t timedTx) ListStagedDirectoryEntries(ctx context.Context, a1 string, a2 string, a3 string, a4 int) ([]flows.
	DirectoryEntry, error) {
	defer t.o.done(opListStagedDirectoryEntries, time.Now())
	return t.Tx.ListStagedDirectoryEntries(ctx, a1, a2, a3, a4)
}

func (t timedTx) ClearStagedDirectoryEntries(ctx context.Context, a1 string) error {
	defer t.o.done(opClearStagedDirectoryEntries, time.Now())
	return t.Tx.ClearStagedDirectoryEntries(ctx, a1)
}

func (t timedTx) GetDirectoryState(ctx context.Context, a1 string) (flows.
	DirectoryState, error) {
	defer t.o.done(opGetDirectoryState, time.Now())
	return t.Tx.GetDirectoryState(ctx, a1)
}

func (t timedTx) PutDirectoryState(ctx context.Context, a1 flows.
	DirectoryState) error {
	defer t.o.done(opPutDirectoryState, time.Now())
	return t.Tx.PutDirectoryState(ctx, a1)
}

func (t timedTx) ListDirectoryStates(ctx context.Context) ([]flows.
	DirectoryState, error) {
	defer t.o.done(opListDirectoryStates, time.Now())
	return t.Tx.ListDirectoryStates(ctx)
}

func (t timedTx) AcquireLease(ctx context.Context, a1 string, a2 string, a3 time.Time, a4 time.Duration) (bool, error) {
	defer t.o.done(opAcquireLease, time.Now())
	return t.Tx.AcquireLease(ctx, a1, a2, a3, a4)
}

func (t timedTx) ReleaseLease(ctx context.Context, a1 string, a2 string) error {
	defer t.o.done(opReleaseLease, time.Now())
	return t.Tx.ReleaseLease(ctx, a1, a2)
}

func (t timedTx) CreateSession(ctx context.Context, a1 flows.Session) error {
	defer t.o.done(opCreateSession, time.Now())
	return t.Tx.CreateSession(ctx, a1)
}

func (t timedTx) GetSession(ctx context.Context, a1 string) (flows.Session, error) {
	defer t.o.done(opGetSession, time.Now())
	return t.Tx.GetSession(ctx, a1)
}

func (t timedTx) TouchSession(ctx context.Context, a1 string, a2 time.Time) error {
	defer t.o.done(opTouchSession, time.Now())
	return t.Tx.TouchSession(ctx, a1, a2)
}

func (t timedTx) DeleteSession(ctx context.Context, a1 string) error {
	defer t.o.done(opDeleteSession, time.Now())
	return t.Tx.DeleteSession(ctx, a1)
}

func (t timedTx) PurgeSessions(ctx context.Context, a1 time.Time) error {
	defer t.o.done(opPurgeSessions, time.Now())
	return t.Tx.PurgeSessions(ctx, a1)
}

func (t timedTx) CreateAccount(ctx context.Context, a1 flows.
	Account) error {
	defer t.o.done(opCreateAccount, time.Now())
	return t.Tx.CreateAccount(ctx, a1)
}

func (t timedTx) GetAccount(ctx context.Context, a1 string) (flows.
	Account, error) {
	defer t.o.done(opGetAccount, time.Now())
	return t.Tx.GetAccount(ctx, a1)
}

func (t timedTx) GetAccountByUsername(ctx context.Context, a1 string) (flows.
	Account, error) {
	defer t.o.done(opGetAccountByUsername, time.Now())
	return t.Tx.GetAccountByUsername(ctx, a1)
}

func (t timedTx) ListAccounts(ctx context.Context, a1 flows.
	AccountFilter) ([]flows.
	Account, error) {
	defer t.o.done(opListAccounts, time.Now())
	return t.Tx.ListAccounts(ctx, a1)
}

func (t timedTx) UpdateAccount(ctx context.Context, a1 flows.
	Account) error {
	defer t.o.done(opUpdateAccount, time.Now())
	return t.Tx.UpdateAccount(ctx, a1)
}

func (t timedTx) SetAccountState(ctx context.Context, a1 string, a2 flows.
	AccountState, a3 flows.
	AccountState, a4 flows.
	StateSource, a5 string, a6 time.Time) error {
	defer t.o.done(opSetAccountState, time.Now())
	return t.Tx.SetAccountState(ctx, a1, a2, a3, a4, a5, a6)
}

func (t timedTx) LockActiveAccount(ctx context.Context, a1 string) error {
	defer t.o.done(opLockActiveAccount, time.Now())
	return t.Tx.LockActiveAccount(ctx, a1)
}

func (t timedTx) PurgeRemovedAccounts(ctx context.Context, a1 time.Time) ([]string, error) {
	defer t.o.done(opPurgeRemovedAccounts, time.Now())
	return t.Tx.PurgeRemovedAccounts(ctx, a1)
}

func (t timedTx) CreateDevice(ctx context.Context, a1 flows.
	Device) error {
	defer t.o.done(opCreateDevice, time.Now())
	return t.Tx.CreateDevice(ctx, a1)
}

func (t timedTx) GetDevice(ctx context.Context, a1 string) (flows.
	Device, error) {
	defer t.o.done(opGetDevice, time.Now())
	return t.Tx.GetDevice(ctx, a1)
}

func (t timedTx) ListDevices(ctx context.Context, a1 string) ([]flows.
	Device, error) {
	defer t.o.done(opListDevices, time.Now())
	return t.Tx.ListDevices(ctx, a1)
}

func (t timedTx) UnregisterDevice(ctx context.Context, a1 string, a2 time.Time, a3 string) error {
	defer t.o.done(opUnregisterDevice, time.Now())
	return t.Tx.UnregisterDevice(ctx, a1, a2, a3)
}

func (t timedTx) UpdateDevicePushRoute(ctx context.Context, a1 string, a2 string) error {
	defer t.o.done(opUpdateDevicePushRoute, time.Now())
	return t.Tx.UpdateDevicePushRoute(ctx, a1, a2)
}

func (t timedTx) CreateInvitation(ctx context.Context, a1 flows.
	Invitation) error {
	defer t.o.done(opCreateInvitation, time.Now())
	return t.Tx.CreateInvitation(ctx, a1)
}

func (t timedTx) GetInvitationByTokenHash(ctx context.Context, a1 []byte) (flows.
	Invitation, error) {
	defer t.o.done(opGetInvitationByTokenHash, time.Now())
	return t.Tx.GetInvitationByTokenHash(ctx, a1)
}

func (t timedTx) RedeemInvitation(ctx context.Context, a1 string, a2 time.Time, a3 string) error {
	defer t.o.done(opRedeemInvitation, time.Now())
	return t.Tx.RedeemInvitation(ctx, a1, a2, a3)
}

func (t timedTx) RevokeInvitations(ctx context.Context, a1 string, a2 time.Time) (int, error) {
	defer t.o.done(opRevokeInvitations, time.Now())
	return t.Tx.RevokeInvitations(ctx, a1, a2)
}

func (t timedTx) CreateSignIn(ctx context.Context, a1 flows.
	SignIn) error {
	defer t.o.done(opCreateSignIn, time.Now())
	return t.Tx.CreateSignIn(ctx, a1)
}

func (t timedTx) GetSignIn(ctx context.Context, a1 string) (flows.
	SignIn, error) {
	defer t.o.done(opGetSignIn, time.Now())
	return t.Tx.GetSignIn(ctx, a1)
}

func (t timedTx) ListPendingSignIns(ctx context.Context, a1 string, a2 time.Time) ([]flows.
	SignIn, error) {
	defer t.o.done(opListPendingSignIns, time.Now())
	return t.Tx.ListPendingSignIns(ctx, a1, a2)
}

func (t timedTx) DecideSignIn(ctx context.Context, a1 flows.
	SignIn) error {
	defer t.o.done(opDecideSignIn, time.Now())
	return t.Tx.DecideSignIn(ctx, a1)
}

func (t timedTx) CancelPendingSignIns(ctx context.Context, a1 string, a2 time.Time, a3 string) ([]string, error) {
	defer t.o.done(opCancelPendingSignIns, time.Now())
	return t.Tx.CancelPendingSignIns(ctx, a1, a2, a3)
}

func (t timedTx) UseNonce(ctx context.Context, a1 string, a2 time.Time) error {
	defer t.o.done(opUseNonce, time.Now())
	return t.Tx.UseNonce(ctx, a1, a2)
}

func (t timedTx) PurgeNonces(ctx context.Context, a1 time.Time) error {
	defer t.o.done(opPurgeNonces, time.Now())
	return t.Tx.PurgeNonces(ctx, a1)
}

func (t timedTx) CreateCode(ctx context.Context, a1 flows.
	Code) error {
	defer t.o.done(opCreateCode, time.Now())
	return t.Tx.CreateCode(ctx, a1)
}

func (t timedTx) GetCode(ctx context.Context, a1 string) (flows.
	Code, error) {
	defer t.o.done(opGetCode, time.Now())
	return t.Tx.GetCode(ctx, a1)
}

func (t timedTx) ListActiveCodes(ctx context.Context, a1 string, a2 string, a3 time.Time) ([]flows.
	Code, error) {
	defer t.o.done(opListActiveCodes, time.Now())
	return t.Tx.ListActiveCodes(ctx, a1, a2, a3)
}

func (t timedTx) RedeemCode(ctx context.Context, a1 string, a2 time.Time) error {
	defer t.o.done(opRedeemCode, time.Now())
	return t.Tx.RedeemCode(ctx, a1, a2)
}

func (t timedTx) RecordCodeAttempt(ctx context.Context, a1 string) (int, error) {
	defer t.o.done(opRecordCodeAttempt, time.Now())
	return t.Tx.RecordCodeAttempt(ctx, a1)
}

func (t timedTx) RevokeCodes(ctx context.Context, a1 string, a2 flows.
	Method, a3 string, a4 time.Time) (int, error) {
	defer t.o.done(opRevokeCodes, time.Now())
	return t.Tx.RevokeCodes(ctx, a1, a2, a3, a4)
}

func (t timedTx) PurgeCodes(ctx context.Context, a1 time.Time) error {
	defer t.o.done(opPurgeCodes, time.Now())
	return t.Tx.PurgeCodes(ctx, a1)
}

func (t timedTx) GetAccountLimits(ctx context.Context, a1 string) (flows.
	AccountLimits, error) {
	defer t.o.done(opGetAccountLimits, time.Now())
	return t.Tx.GetAccountLimits(ctx, a1)
}

func (t timedTx) RecordCodeFailure(ctx context.Context, a1 string, a2 time.Time, a3 int, a4 time.Duration) (int, time.Time, error) {
	defer t.o.done(opRecordCodeFailure, time.Now())
	return t.Tx.RecordCodeFailure(ctx, a1, a2, a3, a4)
}

func (t timedTx) ResetCodeFailures(ctx context.Context, a1 string) error {
	defer t.o.done(opResetCodeFailures, time.Now())
	return t.Tx.ResetCodeFailures(ctx, a1)
}

func (t timedTx) UnlockCodes(ctx context.Context, a1 string) error {
	defer t.o.done(opUnlockCodes, time.Now())
	return t.Tx.UnlockCodes(ctx, a1)
}

func (t timedTx) BlockPush(ctx context.Context, a1 string, a2 time.Time) error {
	defer t.o.done(opBlockPush, time.Now())
	return t.Tx.BlockPush(ctx, a1, a2)
}

func (t timedTx) HitRateLimit(ctx context.Context, a1 string, a2 time.Time, a3 time.Duration, a4 int) (bool, time.Duration, error) {
	defer t.o.done(opHitRateLimit, time.Now())
	return t.Tx.HitRateLimit(ctx, a1, a2, a3, a4)
}

func (t timedTx) PurgeRateLimits(ctx context.Context, a1 time.Time) error {
	defer t.o.done(opPurgeRateLimits, time.Now())
	return t.Tx.PurgeRateLimits(ctx, a1)
}

func (t timedTx) AppendAudit(ctx context.Context, a1 flows.
	AuditEvent) (flows.
	AuditEvent, error) {
	defer t.o.done(opAppendAudit, time.Now())
	return t.Tx.AppendAudit(ctx, a1)
}

func (t timedTx) ListAudit(ctx context.Context, a1 flows.
	AuditFilter) ([]flows.
	AuditEvent, error) {
	defer t.o.done(opListAudit, time.Now())
	return t.Tx.ListAudit(ctx, a1)
}
