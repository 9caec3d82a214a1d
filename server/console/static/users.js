// Users (admins only: list, add, change role, set a password, delete) and the
// "Change my password" form every signed-in user has.
import { api, username, withNewTokens } from "./api.js";

const esc = (x) => String(x ?? "").replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
const ROLES = ["viewer", "operator", "admin"];
const roleOptions = (sel) => ROLES.map((r) => `<option${r === sel ? " selected" : ""}>${r}</option>`).join("");

export class UsersPanel {
  constructor(root) {
    this.root = root; this.root.classList.add("panel");
    this.root.addEventListener("click", (e) => this._act(e));
  }

  msg(text) { this.root.querySelector("#user-msg").textContent = text; }

  async render(message = "") {
    let users = [];
    try { users = (await api("/v1/users")).users; } catch (err) { message = err.message; }
    this.root.innerHTML = `<h2>Users</h2>
      <form id="new-user">
        <label>Username <input name="username" required autocomplete="off"></label>
        <label>Password <input name="password" type="password" required autocomplete="new-password"></label>
        <label>Role <select name="role">${roleOptions("viewer")}</select></label>
        <button type="submit">Add user</button></form>
      <div id="user-msg" role="status">${esc(message)}</div>
      <table><thead><tr><th>Username</th><th>Role</th><th>New password</th><th></th></tr></thead><tbody>
      ${users.map((u) => `<tr data-user="${u.id}"><td>${esc(u.username)}${u.username === username() ? " (you)" : ""}</td>
        <td><select aria-label="Role of ${esc(u.username)}" data-field="role">${roleOptions(u.role)}</select>
          <button type="button" class="quiet" data-act="role" data-id="${u.id}" data-name="${esc(u.username)}">Change role</button></td>
        <td><input type="password" aria-label="New password for ${esc(u.username)}" data-field="password" autocomplete="new-password">
          <button type="button" class="quiet" data-act="password" data-id="${u.id}" data-name="${esc(u.username)}">Set password</button></td>
        <td><button type="button" class="danger" data-act="delete" data-id="${u.id}" data-name="${esc(u.username)}">Delete</button></td></tr>`).join("")}
      </tbody></table>`;
    const form = this.root.querySelector("#new-user");
    form.onsubmit = async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      try {
        const u = await api("/v1/users", { method: "POST",
          body: { username: data.get("username"), password: data.get("password"), role: data.get("role") } });
        await this.render(`Added ${u.username} (${u.role}).`);
      } catch (err) { this.msg(`Could not add the user: ${err.message}`); }
    };
  }

  async _act(e) {
    const b = e.target.closest("[data-act]");
    if (!b) return;
    const { act, id, name } = b.dataset;
    const tr = b.closest("tr");
    try {
      if (act === "role") {
        const role = tr.querySelector("[data-field=role]").value;
        await api(`/v1/users/${id}`, { method: "PATCH", body: { role } });
        await this.render(`${name} is now ${role}.`);
      } else if (act === "password") {
        const password = tr.querySelector("[data-field=password]").value;
        await api(`/v1/users/${id}`, { method: "PATCH", body: { password } });
        await this.render(`New password set for ${name}; their sign-ins ended.`);
      } else if (act === "delete") {
        if (!confirm(`Delete ${name}? Their sign-ins end at once.`)) return;
        await api(`/v1/users/${id}`, { method: "DELETE" });
        await this.render(`Deleted ${name}.`);
      }
    } catch (err) {
      const what = { role: "Role not changed", password: "Password not set", delete: "Not deleted" }[act];
      // Drawn again, so the row shows what is stored (not the refused choice).
      await this.render(`${what} for ${name}: ${err.message}`);
    }
  }
}

export class AccountPanel {
  constructor(root) { this.root = root; this.root.classList.add("panel"); }

  render() {
    this.root.innerHTML = `<h2>My account</h2>
      <p>Signed in as <b>${esc(username())}</b>.</p>
      <form id="my-password"><fieldset><legend>Change my password</legend>
        <label>Current password <input name="current" type="password" required autocomplete="current-password"></label>
        <label>New password <input name="new" type="password" required autocomplete="new-password"></label>
        <button type="submit">Change my password</button></fieldset></form>
      <div id="account-msg" role="status"></div>`;
    const form = this.root.querySelector("#my-password");
    form.onsubmit = async (e) => {
      e.preventDefault();
      const data = new FormData(form);
      const msg = this.root.querySelector("#account-msg");
      try {
        // Every other sign-in of this account ends; this tab carries on with the new pair.
        await withNewTokens(() => api("/v1/auth/password", { method: "POST",
          body: { current: data.get("current"), new: data.get("new") } }));
        form.reset();
        msg.textContent = "Password changed. Your other sign-ins have ended.";
      } catch (err) { msg.textContent = `Password not changed: ${err.message}`; }
    };
  }
}
