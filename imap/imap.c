/*
 * imap: the process of the IMAP server that runs as the user (see
 * imap.h).  posternd starts one per uid and passes it the sessions that
 * imap-login authenticated; mailproc (login/mailproc.h) receives them.
 *
 * This file holds what spans sessions (DESIGN §12 "The mail process per
 * uid"): the users' stores, and the mailboxes open in this process.  A
 * mailbox selected by several sessions is open once: one store view,
 * synced once, and what changed (a flag set by one session, an expunge,
 * a delivery noticed through inotify) is queued to every session that
 * selected it, to be sent when the protocol allows (at the end of a
 * command, or at once to a session in IDLE).  What happens inside a
 * session is imap_session.c's and the imap_cmd_*.c files'.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "imap.h"
#include "ioloop.h"
#include "log.h"
#include "mailproc.h"
#include "mime.h"
#include "store.h"
#include "str.h"
#include "xmalloc.h"

static struct imap_user *imap_users;

/*
 * A mailbox that no session has any more stays open this long (at most
 * this many per user), so that a client that selects it again, or logs
 * in again (clients reconnect often), finds its view built: the SELECT
 * then only syncs instead of reading the whole mailbox (a big one takes
 * seconds).  The view stays current meanwhile through inotify.  It is
 * closed at once when the folder is deleted or renamed here, and at the
 * exit of the process.
 */
#define IMAP_MBOX_LINGER_MS	(30 * 1000)
#define IMAP_MBOX_LINGER_MAX	8

/* ---- users ---- */

struct imap_user *
imap_user_get(const char *user, const char *home, const char *mail,
    const char **error_r)
{
	struct imap_user *u;

	for (u = imap_users; u != NULL; u = u->next) {
		if (strcmp(u->user, user) == 0 && strcmp(u->home, home) == 0 &&
		    strcmp(u->mail, mail) == 0) {
			u->refs++;
			return u;
		}
	}
	u = xcalloc(1, sizeof(*u));
	if (store_user_open(mail, user, home, &u->su, error_r) < 0) {
		free(u);
		return NULL;
	}
	u->user = xstrdup(user);
	u->home = xstrdup(home);
	u->mail = xstrdup(mail);
	u->refs = 1;
	u->next = imap_users;
	imap_users = u;
	return u;
}

void
imap_user_unref(struct imap_user **up)
{
	struct imap_user *u = *up, **pp;

	*up = NULL;
	if (u == NULL || --u->refs > 0)
		return;
	if (u->mboxes != NULL)
		log_panic("imap_user_unref: mailboxes still open");
	for (pp = &imap_users; *pp != NULL; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			break;
		}
	store_user_close(&u->su);
	free(u->user);
	free(u->home);
	free(u->mail);
	free(u);
}

void
imap_user_autocreate(struct imap_user *u)
{
	static const char *const names[] = IMAP_SPECIAL_FOLDERS;
	const char *error;
	char **subs;
	bool exists;
	size_t i;

	if (store_subscriptions_read(u->su, &subs, &exists, &error) < 0) {
		log_error("imap(%s): %s", u->user, error);
		return;
	}
	strv_free(&subs);
	/* Once: a user who deleted Junk does not get it back. */
	if (exists)
		return;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int r = store_folder_create(u->su, names[i], &error);

		if (r == STORE_ERR_CANNOT) {
			/* A mail_location without folders (one mbox). */
			log_debug("imap(%s): no %s: %s", u->user, names[i],
			    error);
			return;
		}
		if (r == STORE_ERR_TEMP) {
			log_error("imap(%s): cannot create %s: %s", u->user,
			    names[i], error);
			continue;
		}
		if (store_subscription_set(u->su, names[i], true,
		    &error) < 0)
			log_error("imap(%s): cannot subscribe %s: %s",
			    u->user, names[i], error);
	}
}

/* ---- open mailboxes ---- */

struct imap_mbox *
imap_mbox_find(struct imap_user *u, const char *name, bool readonly)
{
	struct imap_mbox *m;

	/* A gone one is kept only for the sessions that still show it. */
	for (m = u->mboxes; m != NULL; m = m->next)
		if (m->readonly == readonly && !m->gone &&
		    strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

static void imap_mbox_notify(int fd, int events, void *ctx);
static void imap_mbox_free(struct imap_mbox *m);

/* Sessions that see this mailbox must report what the sync found. */
static void
imap_mbox_cb_expunged(uint32_t idx, uint32_t uid, void *ctx)
{
	struct imap_mbox *m = ctx;
	unsigned int i;

	(void)idx;
	m->expunge_gen++;
	for (i = 0; i < IMAP_MIME_CACHE; i++)
		if (m->cache[i].tree != NULL && m->cache[i].uid == uid)
			mime_part_free(&m->cache[i].tree);
}

static void
imap_mbox_cb_flags(uint32_t idx, void *ctx)
{
	struct imap_mbox *m = ctx;

	imap_mbox_flags_changed(m, store_mailbox_msg(m->mb, idx)->uid, NULL);
}

static void
imap_mbox_cb_new(uint32_t count, void *ctx)
{
	(void)count;
	(void)ctx;
	/* Sessions compare their view with the store's (new UIDs are
	 * always above the old ones). */
}

void
imap_mbox_ghost_add(struct imap_mbox *m, const struct store_msg *sm)
{
	/* Only sessions other than the expunging one can ask; without
	 * them there is nobody to keep it for. */
	if (m->sessions == NULL || m->sessions->sel_next == NULL ||
	    m->nghosts >= IMAP_MAX_GHOSTS)
		return;
	if (m->nghosts == m->capghosts) {
		m->capghosts = m->capghosts > 0 ? m->capghosts * 2 : 16;
		m->ghosts = xreallocarray(m->ghosts, m->capghosts,
		    sizeof(*m->ghosts));
	}
	m->ghosts[m->nghosts++] = *sm;
}

const struct store_msg *
imap_mbox_ghost(const struct imap_mbox *m, uint32_t uid)
{
	size_t i;

	/* Few, and the latest are asked for most. */
	for (i = m->nghosts; i-- > 0; )
		if (m->ghosts[i].uid == uid)
			return &m->ghosts[i];
	return NULL;
}

void
imap_mbox_ghosts_prune(struct imap_mbox *m)
{
	const struct imap_session *s;

	if (m->nghosts == 0)
		return;
	for (s = m->sessions; s != NULL; s = s->sel_next)
		if (s->expunge_gen != m->expunge_gen ||
		    s->uidvalidity != m->uidvalidity)
			return;
	free(m->ghosts);
	m->ghosts = NULL;
	m->nghosts = m->capghosts = 0;
}

static void
imap_mbox_cache_clear(struct imap_mbox *m)
{
	unsigned int i;

	for (i = 0; i < IMAP_MIME_CACHE; i++)
		mime_part_free(&m->cache[i].tree);
}

void
imap_mbox_sync_cb(struct imap_mbox *m, struct store_sync_cb *cb)
{
	memset(cb, 0, sizeof(*cb));
	cb->expunged = imap_mbox_cb_expunged;
	cb->flags_changed = imap_mbox_cb_flags;
	cb->new_messages = imap_mbox_cb_new;
	cb->ctx = m;
}

int
imap_mbox_sync(struct imap_mbox *m, const char **error_r)
{
	struct store_sync_cb cb;

	imap_mbox_sync_cb(m, &cb);
	timer_remove(&m->sync_timer);
	if (m->notify_io != NULL)
		io_set_events(m->notify_io, IOLOOP_READ);
	if (store_mailbox_sync(m->mb, &cb, error_r) < 0)
		return -1;
	if (store_mailbox_uidvalidity(m->mb) != m->uidvalidity) {
		/* Everything the sessions knew is void (RFC 9051
		 * §2.3.1.1): they see it all expunged and new. */
		m->uidvalidity = store_mailbox_uidvalidity(m->mb);
		m->recent_upto = 0;
		m->fresh_upto = 0;
		m->expunge_gen++;
		imap_mbox_cache_clear(m);
		/* Their UIDs may name new messages now. */
		m->nghosts = 0;
	}
	imap_mbox_poke(m);
	return 0;
}

void
imap_mbox_poke(struct imap_mbox *m)
{
	struct imap_session *s, *next;

	for (s = m->sessions; s != NULL; s = next) {
		next = s->sel_next;
		imap_session_poke(s);
	}
}

static void
imap_mbox_sync_timer(void *ctx)
{
	struct imap_mbox *m = ctx;
	const char *error;

	m->sync_timer = NULL;
	if (imap_mbox_sync(m, &error) < 0)
		log_error("imap(%s): sync of %s failed: %s", m->u->user,
		    m->name, error);
}

/* inotify: the mailbox changed on disk (a delivery, mutt, ...). */
static void
imap_mbox_notify(int fd, int events, void *ctx)
{
	struct imap_mbox *m = ctx;

	(void)fd;
	(void)events;
	/* The sync drains the descriptor; until then, do not listen. */
	io_set_events(m->notify_io, 0);
	if (m->sync_timer == NULL)
		m->sync_timer = timer_add(IMAP_SYNC_DELAY_MS,
		    imap_mbox_sync_timer, m);
}

/*
 * A read-only mailbox that no session has while the read-write one of
 * the same name is open would keep showing as \Recent what a session
 * of the read-write one takes (its view carries \Recent from when the
 * file was in new/): it is closed, so the next EXAMINE or STATUS opens
 * it anew and sees what is left.
 */
static void
imap_mbox_drop_readonly(struct imap_user *u, const char *name)
{
	struct imap_mbox *m, *next;

	for (m = u->mboxes; m != NULL; m = next) {
		next = m->next;
		if (m->readonly && m->refs == 0 && strcmp(m->name, name) == 0)
			imap_mbox_free(m);
	}
}

struct imap_mbox *
imap_mbox_get(struct imap_user *u, const char *name, bool readonly,
    int *kind_r, const char **error_r)
{
	struct imap_mbox *m;
	int fd;

	if (!readonly)
		imap_mbox_drop_readonly(u, name);
	m = imap_mbox_find(u, name, readonly);
	*kind_r = 0;
	if (m != NULL && m->refs == 0 && store_folder_exists(u->su,
	    name) == 0) {
		/* Kept open, and deleted meanwhile by another program. */
		imap_mbox_free(m);
		m = NULL;
	}
	if (m != NULL) {
		m->refs++;
		timer_remove(&m->linger_timer);
		return m;
	}
	if (store_folder_exists(u->su, name) == 0) {
		*kind_r = STORE_ERR_NONEXISTENT;
		*error_r = "Mailbox doesn't exist";
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	if (store_mailbox_open(u->su, name, readonly ?
	    STORE_OPEN_READONLY : 0, &m->mb, error_r) < 0) {
		*kind_r = store_folder_exists(u->su, name) == 0 ?
		    STORE_ERR_NONEXISTENT : STORE_ERR_TEMP;
		free(m);
		return NULL;
	}
	store_keywords_load(m->mb);
	m->u = u;
	u->refs++;
	m->name = xstrdup(name);
	m->readonly = readonly;
	m->refs = 1;
	m->uidvalidity = store_mailbox_uidvalidity(m->mb);
	m->next = u->mboxes;
	u->mboxes = m;
	fd = store_mailbox_notify_fd(m->mb);
	if (fd >= 0)
		m->notify_io = io_add(fd, IOLOOP_READ, imap_mbox_notify, m);
	return m;
}

static void
imap_mbox_free(struct imap_mbox *m)
{
	struct imap_mbox **pp;
	struct imap_user *u = m->u;

	for (pp = &u->mboxes; *pp != NULL; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	io_remove(&m->notify_io);
	timer_remove(&m->sync_timer);
	timer_remove(&m->poke_timer);
	timer_remove(&m->linger_timer);
	imap_mbox_cache_clear(m);
	store_mailbox_close(&m->mb);
	free(m->ghosts);
	free(m->name);
	free(m);
	imap_user_unref(&u);
}

static void
imap_mbox_linger_end(void *ctx)
{
	struct imap_mbox *m = ctx;

	m->linger_timer = NULL;
	/* STATUS may have taken it meanwhile (imap_status_open()). */
	if (m->refs == 0)
		imap_mbox_free(m);
}

/*
 * m has no user left: keep it open a while.  Before, close the oldest
 * (last in the list) unused one of the user when there are too many.
 */
static void
imap_mbox_linger(struct imap_mbox *m)
{
	struct imap_mbox *o, *last = NULL;
	unsigned int n = 0;

	for (o = m->u->mboxes; o != NULL; o = o->next)
		if (o != m && o->refs == 0) {
			n++;
			last = o;
		}
	if (n >= IMAP_MBOX_LINGER_MAX && last != NULL)
		imap_mbox_free(last);
	/* Nobody can ask for expunged messages any more. */
	free(m->ghosts);
	m->ghosts = NULL;
	m->nghosts = m->capghosts = 0;
	/*
	 * \Recent (RFC 3501 §2.3.2) as a new open would give it, so that
	 * what a client sees does not depend on whether the mailbox was
	 * still open: a read-write mailbox keeps what it gave (a message
	 * is \Recent in one session only, and a new open would not see it
	 * so either: it was taken out of new/); a read-only one gives
	 * \Recent away without taking it, so it forgets it gave it; and
	 * what this process saved is \Recent only while a session has the
	 * mailbox open (a new open does not know it was saved here).
	 */
	if (m->readonly)
		m->recent_upto = 0;
	m->fresh_upto = 0;
	timer_remove(&m->linger_timer);
	m->linger_timer = timer_add(IMAP_MBOX_LINGER_MS, imap_mbox_linger_end,
	    m);
}

void
imap_mbox_unref(struct imap_mbox **mp)
{
	struct imap_mbox *m = *mp;

	*mp = NULL;
	if (m == NULL || --m->refs > 0)
		return;
	if (m->sessions != NULL)
		log_panic("imap_mbox_unref: sessions still attached");
	if (m->gone || (m->readonly && imap_mbox_find(m->u, m->name,
	    false) != NULL))
		imap_mbox_free(m);	/* see imap_mbox_drop_readonly() */
	else
		imap_mbox_linger(m);
}

/* At exit: close what no session has (the rest goes with them). */
static void
imap_mbox_linger_close_all(void)
{
	struct imap_user *u;
	struct imap_mbox *m;

again:
	for (u = imap_users; u != NULL; u = u->next)
		for (m = u->mboxes; m != NULL; m = m->next)
			if (m->refs == 0) {
				/* May free u: start over. */
				imap_mbox_free(m);
				goto again;
			}
}

static void
imap_mbox_poke_timer(void *ctx)
{
	struct imap_mbox *m = ctx;

	m->poke_timer = NULL;
	imap_mbox_poke(m);
}

void
imap_mbox_flags_changed(struct imap_mbox *m, uint32_t uid,
    struct imap_session *except)
{
	struct imap_session *s;
	bool others = false;

	for (s = m->sessions; s != NULL; s = s->sel_next)
		if (s != except) {
			imap_session_mark_flags(s, uid);
			others = true;
		}
	/* Idling sessions hear of it right after this command's turn, once
	 * for all the messages it changed. */
	if (others && m->poke_timer == NULL)
		m->poke_timer = timer_add(0, imap_mbox_poke_timer, m);
}

bool
imap_mbox_is_recent(const struct imap_mbox *m, const struct store_msg *sm)
{
	if (sm->uid <= m->recent_upto)
		return false;	/* another session has it */
	return (sm->flags & STORE_RECENT) != 0 || sm->uid <= m->fresh_upto;
}

void
imap_mbox_saved(struct imap_mbox *m, const uint32_t *uids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (uids[i] > m->fresh_upto)
			m->fresh_upto = uids[i];
}

struct mime_part *
imap_mbox_cache_get(struct imap_mbox *m, uint32_t uid)
{
	unsigned int i;

	for (i = 0; i < IMAP_MIME_CACHE; i++)
		if (m->cache[i].tree != NULL && m->cache[i].uid == uid)
			return m->cache[i].tree;
	return NULL;
}

void
imap_mbox_cache_put(struct imap_mbox *m, uint32_t uid,
    struct mime_part *tree)
{
	struct imap_mime_cached *c = &m->cache[m->cache_next];

	mime_part_free(&c->tree);
	c->uid = uid;
	c->tree = tree;
	m->cache_next = (m->cache_next + 1) % IMAP_MIME_CACHE;
}

void
imap_mbox_gone(struct imap_user *u, const char *name)
{
	struct imap_mbox *m, *next;
	size_t len = strlen(name);

	/*
	 * Sessions that selected it see every message expunged at their
	 * next chance and then an empty mailbox, as RFC 9051 §6.3.4 lets
	 * a server treat a mailbox deleted under a session.  One that no
	 * session has is closed now: its view and its inotify watch are of
	 * a folder that is no more (a new one of the same name is another
	 * mailbox).  The user stays: the caller's session holds it.
	 */
	for (m = u->mboxes; m != NULL; m = next) {
		const char *error;

		next = m->next;
		if (strncmp(m->name, name, len) != 0 ||
		    (m->name[len] != '\0' && m->name[len] != '/'))
			continue;
		m->gone = true;
		if (m->refs == 0) {
			imap_mbox_free(m);
			continue;
		}
		if (imap_mbox_sync(m, &error) < 0)
			log_debug("imap(%s): %s is gone: %s", u->user,
			    m->name, error);
	}
}

int
main(int argc, char **argv)
{
	int ret = mailproc_main("imap", argc, argv, imap_session_new);

	imap_mbox_linger_close_all();
	return ret;
}
