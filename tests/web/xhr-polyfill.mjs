// A small XMLHttpRequest for node on top of fetch, enough for Strophe.js's BOSH transport. It exposes
// responseXML (parsed with @xmldom/xmldom): without it Strophe's login hangs without a word.
import { DOMParser } from '@xmldom/xmldom';

export class XMLHttpRequest {
  constructor() {
    this.readyState = 0;
    this.status = 0;
    this.responseText = '';
    this.responseXML = null;
    this.onreadystatechange = null;
    this._headers = {};
    this._controller = new AbortController();
  }
  overrideMimeType() {}
  open(method, url) {
    this._method = method;
    this._url = url;
    this._change(1);
  }
  setRequestHeader(name, value) {
    this._headers[name] = value;
  }
  getResponseHeader(name) {
    return this._response?.headers.get(name) ?? null;
  }
  getAllResponseHeaders() {
    if (!this._response) return '';
    return [...this._response.headers].map(([k, v]) => `${k}: ${v}`).join('\r\n');
  }
  abort() {
    this._controller.abort();
  }
  send(body) {
    const request = { method: this._method, body, headers: this._headers, signal: this._controller.signal };
    fetch(this._url, request).then(
      async (response) => {
        this._response = response;
        this.status = response.status;
        this._change(2);
        this.responseText = await response.text();
        try {
          this.responseXML = new DOMParser().parseFromString(this.responseText, 'text/xml');
        } catch {
          this.responseXML = null;
        }
        this._change(4);
      },
      () => {
        this.status = 0; // a network error, as a browser reports it
        this._change(4);
      },
    );
  }
  _change(state) {
    this.readyState = state;
    if (this.onreadystatechange) this.onreadystatechange();
  }
}

globalThis.XMLHttpRequest = XMLHttpRequest;
